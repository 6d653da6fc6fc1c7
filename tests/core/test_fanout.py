"""The delivery fan-out's chunks: links in order, each on its own, one run row per chunk."""

import pytest

from apps.core import fanout
from apps.core.models import Run

pytestmark = pytest.mark.django_db


def test_chunks_keep_the_order_and_the_size(settings):
    settings.DELIVERY_CHUNK = 3
    assert fanout.chunks(range(7)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert fanout.chunks([]) == []
    assert fanout.chunks(range(3), size=2) == [[0, 1], [2]]
    settings.DELIVERY_CHUNK = 0
    assert fanout.chunks(range(2)) == [[0], [1]]  # a misconfigured size still delivers


def test_a_chunk_goes_on_past_a_failing_link_and_logs_one_run_with_its_error(deployment):
    done = []

    def one(pk, deadline):
        if pk == 2:
            raise ValueError("bad mapping")
        done.append(pk)
        return (f"link {pk}", {"sent": pk}, "", deployment.pk) if pk != 3 else None

    report = fanout.chunk_run([1, 2, 3, 4], one=one, kind="test.deliver", what="link",
                              requeue=pytest.fail)
    assert done == [1, 3, 4]
    assert report.counts == {"sent": 5} and report.active == 3 and report.links == 4
    run = Run.objects.get()
    assert (run.kind, run.status, run.deployment) == ("test.deliver", Run.Status.PARTIAL,
                                                      deployment)
    assert run.error == "link 2: ValueError: bad mapping" and run.target == "3 of 4 links"
    assert run.counts == {"sent": 5, "links": 4, "active": 3, "failed_links": 1,
                          "requeued": 0}


def test_a_chunk_where_every_active_link_failed_is_a_failed_run():
    def one(pk, deadline):
        return f"link {pk}", {}, "HTTP 503", None

    fanout.chunk_run([1, 2], one=one, kind="test.deliver", what="link", requeue=pytest.fail)
    run = Run.objects.get()
    assert run.status == Run.Status.FAILED and run.deployment is None
    assert run.error == "link 1: HTTP 503; link 2: HTTP 503"


def test_a_chunk_that_did_nothing_leaves_no_run():
    report = fanout.chunk_run([1, 2], one=lambda pk, deadline: None, kind="test.deliver",
                              what="link", requeue=pytest.fail)
    assert report.links == 2 and report.active == 0 and not Run.objects.exists()


def test_links_left_when_the_slice_is_up_go_to_a_new_chunk():
    requeued = []
    report = fanout.chunk_run([1, 2, 3], one=lambda pk, deadline: None, kind="test.deliver",
                              what="link", requeue=requeued.append, budget=0)
    assert report.links == 1 and requeued == [[2, 3]] and report.rest == [2, 3]
