"""The web editor (``factorkit serve``): a FastAPI app and one static page, for any trained run."""
