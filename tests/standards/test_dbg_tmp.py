import pytest
from tests.engine.helpers import event
pytestmark = pytest.mark.anyio

@pytest.mark.parametrize("atype", ["artillery_shelling", "air_raid"])
async def test_x(start, clock, atype):
    async with start() as api:
        r = await api.post(event("operator_alert", 0, regions=["UA63000000000041885"], alert_type=atype, action="raise", operator="x"))
        assert r.status_code == 202
