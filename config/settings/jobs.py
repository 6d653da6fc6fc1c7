"""Background jobs: Celery (broker, limits, queues, beat) and the outbox's retries.
"""

from kombu import Queue

from config.settings.base import VAR_DIR, env
from config.settings.stores import REDIS_URL

# --- Celery ------------------------------------------------------------------------------

if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    # Longer than the hard time limit, so an acked-late task is not redelivered while running.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "results").mkdir(parents=True, exist_ok=True)
    # The host is ignored by this transport; naming one keeps kombu from warning "No hostname
    # was supplied" on every connection.
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # The exchange tables: under var/ too, not in the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = f"file://{VAR_DIR / 'results'}"

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
# A long job (a Wattics stream's history, a DEXMA backfill) works this many seconds (then
# finishes the batch or round in hand), and queues its continuation behind the tasks already
# waiting: a backlog on one platform never holds every worker process while another
# platform's deliveries wait.
TASK_SLICE_SECONDS = env.int("TASK_SLICE_SECONDS", default=15)
# Beat's delivery fan-out queues the links with work this many to a task (apps/core/fanout.py):
# a chunk delivers them one after the other, each under its own lock, within one slice.
DELIVERY_CHUNK = env.int("DELIVERY_CHUNK", default=50)
CELERY_RESULT_EXPIRES = 3600
# Outcomes live in the database (runs, batches); a task's return value is not kept. Only the
# ping (`core.ping`) asks for its result. Otherwise every task sent by beat or the web would
# subscribe to its result channel in Redis, and every finished task write one: during a Redis
# outage beat would stall on those subscriptions, and a worker fail tasks that had finished.
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task running when the broker connection drops goes on: it works on the database and the
# platforms, not the broker, and its batch's claim stays valid. (Celery 6 will default to
# cancelling it; this keeps today's behaviour. config/celery.py silences Celery's reminder.)
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BEAT_SCHEDULER = "apps.core.beat:Scheduler"
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A queue per platform, every one consumed by each worker unless it is started with `-Q`. A
# worker takes from its queues in turn, so a backlog on one platform (thousands of Wattics
# pushes) never leaves another platform's deliveries waiting behind it. For hard isolation,
# run one worker per queue: `celery -A config worker -Q dexma`.
PLATFORM_QUEUES = ("dexma", "wattics", "volue", "pull")
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = [Queue(CELERY_TASK_DEFAULT_QUEUE), *(Queue(name) for name in PLATFORM_QUEUES)]
CELERY_TASK_ROUTES = {f"{name}.*": {"queue": name} for name in PLATFORM_QUEUES}

# --- Outbox ------------------------------------------------------------------------------

# Seconds between attempts of a failed outbound batch; the last value repeats.
OUTBOX_RETRY_SCHEDULE = env.list(
    "OUTBOX_RETRY_SCHEDULE", cast=int, default=[10, 30, 60, 300, 900, 1800, 3600]
)
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=25)
# A batch claimed for sending longer ago than this is presumed lost with its worker.
OUTBOX_LEASE_SECONDS = env.int("OUTBOX_LEASE_SECONDS", default=CELERY_TASK_TIME_LIMIT + 60)
