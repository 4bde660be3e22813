"""The GIMP 3 adapter: the plug-in folder ``adain-style-transfer/`` (run by GIMP's own Python, without torch) and
its installer (:mod:`gimp_plugin.install`, behind ``adain install gimp``)."""
