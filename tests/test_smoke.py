import pytest

from django_ai_fields.models import AIJob, AIUsage
from tests.testapp.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)


def test_save_creates_job_and_worker_writes_value(fake_provider, worker):
    fake_provider.responder = lambda req: (
        "hot"
        if "Classify" in req.raw.decode()
        else (
            '{"industry": "fintech", "employees": 12}'
            if "Extract" in req.raw.decode()
            else "A summary"
        )
    )
    lead = Lead.objects.create(
        name="Ada", company="Acme", notes="Wants 20 seats", ssn="123-45-6789"
    )
    assert AIJob.objects.count() == 3
    worker.drain()
    lead.refresh_from_db()
    assert lead.summary == "A summary"
    assert lead.heat == "hot"
    assert lead.profile == {"industry": "fintech", "employees": 12}
    assert AIUsage.objects.count() == 3
    assert "123-45-6789" not in fake_provider.bodies_text()
    assert set(AIJob.objects.values_list("status", flat=True)) == {"succeeded"}
