"""Who is calling, and what they may touch: passwords, sessions, roles and facility scopes."""
