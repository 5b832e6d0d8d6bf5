"""HL7 v2.x messages exchanged with hospital systems over MLLP."""
