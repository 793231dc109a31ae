"""The specialist agents; each module registers one (or a few) with ``spec.register_agent``."""
