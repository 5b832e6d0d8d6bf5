"""Application keys of the report feature (the consortium CA and the delivery worker)."""

from __future__ import annotations

from aiohttp import web

from ..reports.delivery import ReportDelivery
from ..signing import ConsortiumCA

CA = web.AppKey("consortium_ca", ConsortiumCA)
REPORT_DELIVERY = web.AppKey("report_delivery", ReportDelivery)
