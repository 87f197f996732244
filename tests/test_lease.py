"""The one-writer-per-output lease: an OS file lock on a local folder (two real processes), a
conditional create with expiry and heartbeat on S3 (moto server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.s3_fixtures import *  # noqa: F403 (the s3_server and s3_bucket fixtures)

HOLDER = """
import sys
from packshot.lease import acquire_lease
from packshot.storage import LocalStorage
with acquire_lease(LocalStorage(sys.argv[1]), "run", "nightly run of catalog.csv"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def _start_holder(out):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_local_lease_refuses_a_second_process_naming_the_holder_and_frees_on_death(tmp_path):
    from packshot.errors import PackshotError
    from packshot.lease import LeaseHeld, acquire_lease
    from packshot.storage import LocalStorage

    storage = LocalStorage(tmp_path / "out")
    holder = _start_holder(tmp_path / "out")
    try:
        with pytest.raises(LeaseHeld) as refused:
            acquire_lease(storage, "run", "second run")
        assert isinstance(refused.value, PackshotError)
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and "nightly run of catalog.csv" in message
        assert "wait" in message  # says what to do
        assert "\n" not in message

        # Another lease name on the same output is independent.
        with acquire_lease(storage, "review", "review server"):
            pass

        # The holder is killed outright: the kernel frees the lock, the next writer gets it at once.
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        with acquire_lease(storage, "run", "second run") as lease:
            assert lease.holder.pid == os.getpid()
            # Within one process a second open of the lock conflicts too (two review apps in one server).
            with pytest.raises(LeaseHeld):
                acquire_lease(storage, "run", "third run")
        with acquire_lease(storage, "run", "after release"):
            pass
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_local_lease_waits_for_the_holder_to_finish(tmp_path):
    from packshot.lease import acquire_lease
    from packshot.storage import LocalStorage

    holder = _start_holder(tmp_path / "out")
    try:
        holder.stdin.write("done\n")  # the holder ends now; the waiter's poll picks the lock up
        holder.stdin.flush()
        with acquire_lease(LocalStorage(tmp_path / "out"), "run", "waiting run", wait_s=30) as lease:
            assert lease.holder.purpose == "waiting run"
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_s3_lease_conditional_create_release_and_refusal(s3_bucket):
    from packshot.lease import LeaseHeld, acquire_lease
    from packshot.storage import open_storage

    client, bucket = s3_bucket
    storage = open_storage(f"s3://{bucket}/runs/r1")
    with acquire_lease(storage, "run", "nightly run") as lease:
        record = json.loads(client.get_object(Bucket=bucket, Key="runs/r1/.locks/run.json")["Body"].read())
        assert record["pid"] == os.getpid() and record["purpose"] == "nightly run"
        with pytest.raises(LeaseHeld) as refused:
            acquire_lease(open_storage(f"s3://{bucket}/runs/r1"), "run", "second run")
        assert "nightly run" in str(refused.value) and f"pid {os.getpid()}" in str(refused.value)
        assert not lease.lost
    # Released: the record is gone and the next writer gets the lease at once.
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix="runs/r1/.locks/")
    with acquire_lease(storage, "run", "second run"):
        pass


def test_s3_lease_heartbeat_keeps_it_and_an_expired_or_damaged_record_is_taken_over(s3_bucket):
    from packshot.lease import LeaseHeld, acquire_lease
    from packshot.storage import open_storage

    client, bucket = s3_bucket
    storage = open_storage(f"s3://{bucket}/out")
    key = "out/.locks/publish.json"

    # A damaged record (a crash mid-write on a store that allows it, a hand edit) counts as expired.
    client.put_object(Bucket=bucket, Key=key, Body=b"{not json")
    with acquire_lease(storage, "publish", "publish after damage"):
        pass

    # A holder that died long ago: its record is older than its TTL, so it is taken over.
    dead = {"host": "gone", "pid": 1, "purpose": "killed publish", "since": "2026-01-01T00:00:00+00:00",
            "ttl_s": 0.5, "token": "x"}
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(dead).encode())
    time.sleep(2.1)  # past the TTL on the server's (second-resolution) clock
    with acquire_lease(storage, "publish", "new publish"):
        record = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert record["purpose"] == "new publish"

    # A live holder renews its record: after several TTLs it still holds and a newcomer is refused.
    with acquire_lease(storage, "publish", "long publish", ttl_s=1.5) as lease:
        first = client.head_object(Bucket=bucket, Key=key)["ETag"]
        time.sleep(4)
        assert client.head_object(Bucket=bucket, Key=key)["ETag"] != first  # renewed
        with pytest.raises(LeaseHeld):
            acquire_lease(storage, "publish", "newcomer")
        assert not lease.lost


def test_s3_lease_lost_to_a_takeover_is_reported_and_never_deletes_the_new_record(s3_bucket):
    from packshot.lease import _put_record, _read_record, acquire_lease
    from packshot.storage import open_storage

    client, bucket = s3_bucket
    storage = open_storage(f"s3://{bucket}/out")
    key = "out/.locks/run.json"
    lease = acquire_lease(storage, "run", "stalled run", ttl_s=3)
    # Another process takes over (as it would after the holder stalled past its TTL).
    holder, etag, _expired = _read_record(storage, key)
    from packshot.lease import Holder

    assert _put_record(storage, key, Holder("other", 2, "taker", "now"), 60, if_match=etag) is not None
    # A second taker holding the same old ETag loses: exactly one takeover wins.
    assert _put_record(storage, key, Holder("third", 3, "late taker", "now"), 60, if_match=etag) is None
    time.sleep(1.5)  # one heartbeat: the renewal's condition fails, the holder learns it lost the lease
    assert lease.lost
    lease.release()
    assert json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["purpose"] == "taker"
