from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from enrs.rpu.models import EmergencyDepartment, FeedCheck, RpuPassage
from tests.rpu.conftest import DATA

pytestmark = pytest.mark.django_db


def test_import_and_supervise_commands(emergency_department: EmergencyDepartment) -> None:
    out, err = StringIO(), StringIO()
    call_command(
        "rpu_import", str(DATA / "passages_invalides.xml"), str(DATA / "bombe.xml"), stdout=out, stderr=err
    )
    assert "passages_invalides.xml : 2 passage(s) accepté(s), 4 rejeté(s)." in out.getvalue()
    assert "bombe.xml : refusé" in err.getvalue()
    assert RpuPassage.objects.count() == 2
    out = StringIO()
    call_command("rpu_supervise", "--jour", "2026-03-10", stdout=out)
    assert "1 structure(s) contrôlée(s) pour le 10/03/2026." in out.getvalue()
    assert FeedCheck.objects.get().state == "late"
    with pytest.raises(CommandError, match="AAAA-MM-JJ"):
        call_command("rpu_supervise", "--jour", "10/03/2026")
