"""Parts of ``tools/package_bundle.py``: vendoring the code a bundle imports, pinning the defaults its weights need,
its installable requirements, the model-zoo README. Importable without the project's ``common`` package."""
