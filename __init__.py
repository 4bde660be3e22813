"""ComfyUI entry point of this repository when it is cloned into ``ComfyUI/custom_nodes/``.

Only a lazy ``comfy_entrypoint`` lives here (no ``NODE_CLASS_MAPPINGS``: ComfyUI would then load the pack the
classic way and ignore the V3 entry point), so importing the repository root needs neither ComfyUI nor torch.
"""

from __future__ import annotations


async def comfy_entrypoint():
    """Return the pack's ``ComfyExtension`` (ComfyUI awaits this once at start-up)."""
    from .comfy_nodes import comfy_entrypoint as real_entrypoint

    return await real_entrypoint()
