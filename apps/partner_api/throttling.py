"""Per-key throttling: a fixed one-minute window counted with an atomic cache increment.

DRF's SimpleRateThrottle keeps a list of timestamps per client and rewrites it on every
request (read-modify-write, racy across workers); a counter per window is one `INCR`.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from apps.partner_api.auth import Partner

WINDOW = 60


class KeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        partner = request.user
        if not isinstance(partner, Partner):
            return True
        limit = partner.key.rate_per_minute or settings.PARTNER_API_RATE_PER_MINUTE
        now = time.time()
        window = int(now // WINDOW)
        name = f"partner_api:rate:{partner.key.prefix}:{window}"
        if cache.add(name, 1, timeout=WINDOW + 5):
            used = 1
        else:
            try:
                used = cache.incr(name)
            except ValueError:  # expired between add and incr
                cache.add(name, 1, timeout=WINDOW + 5)
                used = 1
        self.reset = (window + 1) * WINDOW - now
        request.rate_limit = (limit, max(0, limit - used), int(self.reset + 0.999))
        return used <= limit

    def wait(self) -> float:
        return self.reset
