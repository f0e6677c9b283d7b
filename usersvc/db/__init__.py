"""The PostgreSQL shell: handwritten queries, migrations, the command runner."""
