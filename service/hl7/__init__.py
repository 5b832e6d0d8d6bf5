"""HL7 v2 with the consortium's hospital systems: results (ORU^R01) out to their HIS."""
