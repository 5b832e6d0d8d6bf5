"""The demo consortium for a first ``make run``: facilities, people, synthetic studies sent
through Orthanc like a modality would, and one signed report, so the whole flow shows at once.
Synthetic studies are also used by the tests and the benchmarks.
"""
