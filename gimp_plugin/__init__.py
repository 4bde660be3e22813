"""Data package that ships the GIMP 3 plug-in folder ``adain-style-transfer/`` inside wheels, so that
``adain install gimp`` (:func:`adain_core.worker.install.install_gimp_plugin`) can copy it. Nothing to import."""
