"""PostgreSQL refuses UPDATE, DELETE and TRUNCATE on the audit trail (no-op on other databases).

The triggers stop the application and anyone with ordinary access from rewriting history; the hash
chain (``manage.py verify_audit_chain``) detects what a superuser could still do around them.

TRUNCATE is let through only in a session that opted in with ``SET enrs.audit_allow_truncate = on``:
Django empties test databases with TRUNCATE (TransactionTestCase / pytest's ``transactional_db``), so
test settings set it on their connections (``OPTIONS: {"options": "-c enrs.audit_allow_truncate=on"}``);
production never does.
"""

from django.db import migrations

FORWARD_SQL = """
CREATE OR REPLACE FUNCTION audit_auditevent_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF current_setting('enrs.audit_allow_truncate', true) = 'on' THEN
            RETURN NULL;
        END IF;
        RAISE EXCEPTION 'audit_auditevent est en ajout seul : TRUNCATE refusé'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Seule une base de test se vide : SET enrs.audit_allow_truncate = on dans la session.';
    END IF;
    RAISE EXCEPTION 'audit_auditevent est en ajout seul : % refusé', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Le journal d''audit ne se modifie pas et ne se supprime pas.';
END;
$$;

CREATE TRIGGER audit_auditevent_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_auditevent_append_only();

CREATE TRIGGER audit_auditevent_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_auditevent_append_only();
"""

REVERSE_SQL = """
DROP TRIGGER IF EXISTS audit_auditevent_no_truncate ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_auditevent_no_update_delete ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_auditevent_append_only();
"""


def _run_on_postgresql(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(
            _run_on_postgresql(FORWARD_SQL), _run_on_postgresql(REVERSE_SQL), elidable=False
        ),
    ]
