"""One route table per feature: handlers and server-rendered pages that translate HTTP to the
domain calls of intake, worklist, viewing, reports and dashboard. Collected by
``service.http.routing.setup_routes``; shared HTTP helpers stay in ``service.http``.
"""
