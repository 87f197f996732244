"""Local fakes of external services, served over real HTTP on 127.0.0.1."""
