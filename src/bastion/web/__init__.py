"""The web console: server-rendered pages (Jinja2) for the people who work in Bastion every day, served
by the same process as the API. ``install_console(app)`` adds it to the FastAPI app."""

from bastion.web.app import install_console

__all__ = ["install_console"]
