"""Settings, read from the environment (12-factor); `config.settings` is the one module
Django, Celery and gunicorn are pointed at (`DJANGO_SETTINGS_MODULE`).

Each part reads its own variables; a later part may use an earlier one's values:

- `base`: the environment and `.env`, DEBUG, secrets, apps, middleware, templates, static files
- `stores`: database and cache
- `jobs`: Celery (broker, limits, queues, beat) and the outbox's retries
- `platforms`: where DEXMA, Wattics and Volue are (the sandbox in the demo) and their knobs
- `partner_api`: DRF, the OpenAPI schema and the partner API's limits
- `security`: CSP, CORS, TLS, cookies, login throttling (axes) and the audit log
- `observability`: /metrics, logging, error reports, ops alerts

With nothing set, the hub refuses to start: production needs SECRET_KEY and
SECRETS_ENCRYPTION_KEY. With DEBUG=true it runs on embedded defaults (SQLite and a
file-system Celery broker under var/), which is what `make demo` uses.
"""

from config.settings.base import *  # noqa: F403
from config.settings.jobs import *  # noqa: F403
from config.settings.observability import *  # noqa: F403
from config.settings.partner_api import *  # noqa: F403
from config.settings.platforms import *  # noqa: F403
from config.settings.security import *  # noqa: F403
from config.settings.stores import *  # noqa: F403
