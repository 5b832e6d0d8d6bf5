"""What the service runs on, under every step of the flow: the managed Orthanc and its client,
the web processes behind one port, the bus between them, and the health they report.
"""
