"""Credentials: most specific wins (meter, site, end-user, partner group); encrypted."""

import pytest
from django.db import IntegrityError, connection

from apps.wattics.models import WatticsAccount, WatticsPartner, WatticsPartnerMember
from apps.wattics.selectors import account_for_device, streams_of_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def device(deployment, make_device):
    return make_device(deployment, "meter-1")


@pytest.fixture
def partner(deployment):
    partner = WatticsPartner.objects.create(name="Reseller A")
    WatticsPartnerMember.objects.create(partner=partner, deployment=deployment)
    return partner


def account(name, **scope):
    return WatticsAccount.objects.create(name=name, username=name, password="pw", **scope)


def test_meter_level_account_wins_over_every_other(deployment, device, partner):
    account("partner", partner=partner)
    account("end-user", deployment=deployment)
    account("site", site=device.site)
    assert account_for_device(device=device).name == "site"
    account("meter", device=device)
    assert account_for_device(device=device).name == "meter"


def test_end_user_account_wins_over_the_partner_group(deployment, device, partner):
    account("partner", partner=partner)
    assert account_for_device(device=device).name == "partner"
    account("end-user", deployment=deployment)
    assert account_for_device(device=device).name == "end-user"


def test_partner_account_covers_only_member_deployments(
        deployment, other_deployment, make_device, partner):
    account("partner", partner=partner)
    outsider = make_device(other_deployment, "meter-x")
    assert account_for_device(device=outsider) is None


def test_an_account_is_attached_at_exactly_one_level(deployment, device):
    with pytest.raises(IntegrityError):
        account("two", deployment=deployment, device=device)


def test_password_is_encrypted_at_rest(deployment):
    # Long enough that random ciphertext cannot contain it by chance, as it could "pw".
    secret = "wattics_collector_password_s3cr3t"
    WatticsAccount.objects.create(name="enc", username="enc", password=secret,
                                  deployment=deployment)
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM wattics_watticsaccount")
        (raw,) = cursor.fetchone()
    assert secret not in raw
    assert WatticsAccount.objects.get().password == secret


def test_streams_of_an_account_leave_out_those_a_more_specific_account_covers(
        deployment, make_stream):
    broad = account("end-user", deployment=deployment)
    shared = make_stream(deployment, "wm-1")
    own = make_stream(deployment, "wm-2")
    account("meter", device=own.device)
    assert [s.meter_id for s in streams_of_account(account=broad)] == [shared.meter_id]
