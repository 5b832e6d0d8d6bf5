"""The reading worklist as a running service: claims, the duty roster, escalation, the
requester-specialist conversation, live updates to browsers and in-app/webhook notices. It follows
intake and precedes the viewer and the report.

Not to be confused with the top-level ``worklists`` package: that one holds the pure rules
(priorities, SLA deadlines, claim leases, ordering) with no I/O; this one applies them to the
database, the clock and the connected browsers.
"""
