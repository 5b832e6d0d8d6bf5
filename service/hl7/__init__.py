"""HL7 v2 over MLLP: a county hospital's HIS sends orders (ORM^O01, OMI^O23), cancels them
(ORC-1 ``CA``) and updates patients (ADT^A08); each message is answered with an ACK.

``listener`` is the transport only (MLLP framing, size limit, one ACK per message);
``dispatch`` maps one decoded message to domain calls in one write transaction and returns its
ACK; ``orders`` and ``patient_updates`` are the message kinds; ``wire`` and ``acks`` decode
bytes by MSH-18 and build answers. docs/integration.md describes the interface.

Results go the other way: every signed report version is queued as an ORU^R01
(``results_message``) in the signing's transaction and sent by ``results_outbox``.
"""
