"""The service (`taxgate serve`): the JSON API under /api, the web console at /, batches decided in
background worker processes, and a timer that releases held items and signs checkpoints.

One module per domain, each holding its API routes (`api`, under /api) and its console pages
(`pages`) over plain functions of the stages, which know nothing of HTTP:
`batches`, `reviews`, `orders` (and notices), `ledger` (and `tlog`, the log as C2SP serves it),
`oversight` (dashboard, reports, accounting), `accounts` (signing in, one's account, users, the
audit trail). Beside them:
- `settings`: what the server is told (paths, limits), checked when made;
- `deps`: the service's state as a typed dependency, shared path parameters;
- `access`: tokens, sessions, CSRF, roles per route, refusals and reads logged;
- `pages`: templates, rendering, the status line after an action, the password gate;
- `uploads`: batches received as streams, checked, then queued;
- `jobs`: the supervised workers (leases, attempts, fair claims) and the timer;
- `server`: uvicorn as `taxgate serve` runs it (slow clients cut off, proxies not believed);
- `app`: the FastAPI app that holds them together.
"""

from taxgate.service.settings import Settings

__all__ = ["Settings", "create_app"]


def create_app(*args, **kwargs):
    from taxgate.service import app  # on first use: FastAPI and every route are heavy to import

    return app.create_app(*args, **kwargs)
