"""Drop the two `varchar_pattern_ops` indexes Django made on workers_job for PostgreSQL.

Django adds such a "_like" index beside the plain one of every indexed text column, for
LIKE 'prefix%' lookups. No query on these two columns is one: the API, the dispatcher and the
workers look job_id and assigned_worker_id up by equality (the primary key and the foreign
key's own index answer those; PostgreSQL only picked the _like twins because they cost the
same), and the admin's job search is icontains, UPPER(...) LIKE '%…%', which no btree index
serves. Each job INSERT (one per POST /api/v1/jobs/) and each assignment wrote into both,
8 indexes in all: now 6. Elsewhere than PostgreSQL there are none, and nothing is done.
"""
from django.db import migrations

# (index, column): the names Django gave them (a hash of the table and the column)
_PATTERN_INDEXES = (
    ("workers_job_job_id_c3b3d4ad_like", "job_id"),
    ("workers_job_assigned_worker_id_0fdb32fb_like", "assigned_worker_id"),
)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, _ in _PATTERN_INDEXES:
            schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, column in _PATTERN_INDEXES:
            schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "workers_job" ("{column}" varchar_pattern_ops)')


class Migration(migrations.Migration):

    dependencies = [
        ("workers", "0004_merge_job_clock_and_unready_status"),
    ]

    operations = [
        migrations.RunPython(drop, create),
    ]
