"""Per-key throttling: a fixed one-minute window counted with an atomic cache increment.

DRF's SimpleRateThrottle keeps a list of timestamps per client and rewrites it on every
request (read-modify-write, racy across workers); a counter per window is one `INCR`.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from apps.partner_api.auth import Partner

WINDOW = 60
logger = logging.getLogger(__name__)


class KeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        partner = request.user
        if not isinstance(partner, Partner):
            return True
        limit = partner.key.rate_per_minute or settings.PARTNER_API_RATE_PER_MINUTE
        now = time.time()
        window = int(now // WINDOW)
        name = f"partner_api:rate:{partner.key.prefix}:{window}"
        self.reset = (window + 1) * WINDOW - now
        try:
            used = self._count(name)
        except Exception as exc:
            # The counter lives in the cache (Redis); without it the request goes through
            # unthrottled rather than failing: the readings it carries go to the database.
            logger.warning("partner API: cache unavailable, key %s not throttled: %s",
                           partner.key.prefix, exc)
            return True
        request.rate_limit = (limit, max(0, limit - used), int(self.reset + 0.999))
        return used <= limit

    @staticmethod
    def _count(name: str) -> int:
        if cache.add(name, 1, timeout=WINDOW + 5):
            return 1
        try:
            return cache.incr(name)
        except ValueError:  # expired between add and incr
            cache.add(name, 1, timeout=WINDOW + 5)
            return 1

    def wait(self) -> float:
        return self.reset
