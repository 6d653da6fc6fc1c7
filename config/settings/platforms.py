"""The platforms: where each is (the sandbox in the demo), its credentials and its knobs.
"""

from config.settings.base import DEBUG, env

# --- Where the platforms are -------------------------------------------------------------

# The demo points every platform at the sandbox inside this server.
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=DEBUG)
# Where platforms reach this hub (webhooks, iframe URLs); set it to the public URL in production.
HUB_BASE_URL = env.str(
    "HUB_BASE_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}"
)
_sandbox = f"{HUB_BASE_URL.rstrip('/')}/sandbox"


def _platform_url(name: str, sandbox_path: str, real: str) -> str:
    """The platform's URL from the environment; else the sandbox's page or the real one."""
    return env.str(name, default=f"{_sandbox}{sandbox_path}" if SANDBOX_ENABLED else real)


DEXMA_API_URL = _platform_url("DEXMA_API_URL", "/dexma/v3", "https://api.dexma.com/v3")
DEXMA_INSERT_URL = _platform_url("DEXMA_INSERT_URL", "/dexma/is3/readings",
                                 "https://insert.dexma.com/readings")
WATTICS_API_URL = _platform_url(
    "WATTICS_API_URL", "/wattics/measurements/v2/unifiedjson/",
    "https://web-collector.wattics.com/measurements/v2/unifiedjson/")
# Volue's API address is per customer contract: no public default.
VOLUE_API_URL = _platform_url("VOLUE_API_URL", "/volue/api", "")
VOLUE_AUTH_URL = _platform_url("VOLUE_AUTH_URL", "/volue/connect/token",
                               "https://auth.identity.volue.com/connect/token")

# --- DEXMA Market App (apps.dexma) ----------------------------------------------------

DEXMA_APP_ID = env.str("DEXMA_APP_ID", default="hub-demo-app" if SANDBOX_ENABLED else "")
DEXMA_APP_SECRET = env.str(
    "DEXMA_APP_SECRET", default="sandbox-app-secret" if SANDBOX_ENABLED else ""
)
DEXMA_DATASOURCE_TYPE_KEY = env.str("DEXMA_DATASOURCE_TYPE_KEY", default="hub")
# Origins allowed to frame the /dexma/ pages and to call its authenticated endpoints.
# The demo's sandbox platform page is served from "localhost" while the hub is "127.0.0.1"
# (same server, two origins), so the frame is a real cross-origin frame.
DEXMA_PLATFORM_ORIGINS = env.list(
    "DEXMA_PLATFORM_ORIGINS",
    default=(
        [HUB_BASE_URL.rstrip("/").replace("://127.0.0.1", "://localhost")]
        if SANDBOX_ENABLED
        else ["https://www.dexcell.com"]
    ),
)
# The sandbox platform's per-token APIv3 budgets (editable per token in the admin).
SANDBOX_DEXMA_HOUR_LIMIT = env.int("SANDBOX_DEXMA_HOUR_LIMIT", default=1000)
SANDBOX_DEXMA_DAY_LIMIT = env.int("SANDBOX_DEXMA_DAY_LIMIT", default=10000)

# --- Wattics (apps.wattics) ---------------------------------------------------------------

# Each POST waits at most this long for an answer; an unanswered POST is resolved with the
# last-packet GET before anything else is sent.
WATTICS_CONNECT_TIMEOUT = env.float("WATTICS_CONNECT_TIMEOUT", default=5.0)
WATTICS_READ_TIMEOUT = env.float("WATTICS_READ_TIMEOUT", default=15.0)
# 500/503/no answer: tries in place (with backoff from this base) before the batch waits
# for the outbox's retry schedule; a 5xx or a lost answer only once the last-packet GET
# said Wattics lacks the packet (apps.wattics.client.retry_policy).
WATTICS_SEND_RETRIES = env.int("WATTICS_SEND_RETRIES", default=3)
WATTICS_RETRY_BACKOFF = env.float("WATTICS_RETRY_BACKOFF", default=0.5)
# One outbox batch: a slice of a stream sends whole batches, so this bounds how long past
# TASK_SLICE_SECONDS a push holds its worker process (100 POSTs: seconds, even at 100 ms each
# a quarter of a minute).
WATTICS_BATCH_PACKETS = env.int("WATTICS_BATCH_PACKETS", default=100)
WATTICS_PLAN_MAX_READINGS = env.int("WATTICS_PLAN_MAX_READINGS", default=200_000)
WATTICS_PUSH_EVERY_SECONDS = env.int("WATTICS_PUSH_EVERY_SECONDS", default=60)
# Credentials the demo gives its Wattics account and the sandbox collector.
WATTICS_DEMO_USERNAME = env.str("WATTICS_DEMO_USERNAME", default="demo-partner")
WATTICS_DEMO_PASSWORD = env.str("WATTICS_DEMO_PASSWORD", default="sandbox-wattics-password")

# --- Volue (apps.volue) -------------------------------------------------------------------

VOLUE_CLIENT_ID = env.str("VOLUE_CLIENT_ID", default="hub-demo" if SANDBOX_ENABLED else "")
VOLUE_CLIENT_SECRET = env.str(
    "VOLUE_CLIENT_SECRET", default="sandbox-client-secret" if SANDBOX_ENABLED else ""
)
# Where the platform delivers notifications; must be reachable from the platform.
VOLUE_WEBHOOK_URL = env.str(
    "VOLUE_WEBHOOK_URL", default=f"{HUB_BASE_URL.rstrip('/')}/volue/webhook"
)
VOLUE_NOTIFICATION_TYPES = env.list(
    "VOLUE_NOTIFICATION_TYPES",
    default=["PriceCurveCreated", "UserEligibilityUpdated", "LocationLPCRequested",
             "ResourceLPCRequested", "LPCReservationCreated"],
)
# Pages of GET /events (newest first, at most 1000 per page) read per catch-up run.
VOLUE_CATCH_UP_PAGE_SIZE = env.int("VOLUE_CATCH_UP_PAGE_SIZE", default=100)
VOLUE_CATCH_UP_MAX_PAGES = env.int("VOLUE_CATCH_UP_MAX_PAGES", default=10)
# A report whose data is still incomplete this long after the event's hours is flagged.
VOLUE_REPORT_DEADLINE_HOURS = env.float("VOLUE_REPORT_DEADLINE_HOURS", default=48)
# Largest gap between two readings across which a register or power is interpolated.
VOLUE_MAX_GAP_MINUTES = env.int("VOLUE_MAX_GAP_MINUTES", default=60)
# Sandbox: lifetime of the simulated platform's tokens (the real one says 30 to 60 min).
SANDBOX_VOLUE_TOKEN_LIFETIME = env.int("SANDBOX_VOLUE_TOKEN_LIFETIME", default=300)
# Sandbox (demo): raise a power-limit event over past hours when the first meter registers.
SANDBOX_VOLUE_AUTO_EVENT = env.bool("SANDBOX_VOLUE_AUTO_EVENT", default=DEBUG)
