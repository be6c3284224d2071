"""The service (`taxgate serve`): the JSON API under /api, the web console at /, batches decided in
background worker processes, and a timer that releases held items and signs checkpoints.

- `settings`: what the server is told (paths, limits);
- `access`: tokens, sessions, CSRF, roles per route, and the log of refusals;
- `uploads`: batches received as streams, checked, then queued;
- `jobs`: the workers and the timer;
- `api` and `console`: the routes; `app`: the FastAPI app that holds them together.
"""

from taxgate.service.settings import Settings

__all__ = ["Settings", "create_app"]


def create_app(*args, **kwargs):
    from taxgate.service.app import create_app as create

    return create(*args, **kwargs)
