"""One patient across the consortium (issue 21): linking facilities' local identities of one
person, the review list of likely matches, priors across facilities, repeat-exam alerts and the
consortium record. The index's rows and automatic linking are in service/storage/patients.py;
checking national identifiers in service/identity_numbers.py."""
