"""The points engine: lawful records in, explainable scores and tiers out.

Free of Flask by design: every function takes plain data and a SQLAlchemy session, so the API, the admin,
the scheduler, the CLI, the benchmarks and the tests all call the same code.
"""
