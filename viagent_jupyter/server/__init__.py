"""The Jupyter server extension: REST over the workspace of the server's home.

Enabled on install (``etc/jupyter/jupyter_server_config.d/viagent_jupyter.json``, shipped in
the wheel); ``jupyter server extension list`` shows it. The routes live under
``<base_url>/viagent/api/`` (see :mod:`.handlers`); the workspace opens on the first request.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_jupyter_server_extension"]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from ._service import Service
    from .handlers import handlers

    service = Service()
    web_app = serverapp.web_app
    web_app.settings["viagent_service"] = service
    web_app.add_handlers(".*$", handlers(web_app.settings["base_url"]))
    serverapp.log.info("viagent_jupyter: REST API at %sviagent/api/",
                       web_app.settings["base_url"])


load_jupyter_server_extension = _load_jupyter_server_extension  # the pre-2.0 name
