"""Turnaround, the last step of the flow: figures computed from events alone (received, claimed,
signed, delivered, acknowledged) for the centre's dashboard, and its server-side charts.
"""
