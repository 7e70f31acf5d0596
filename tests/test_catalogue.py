"""prefect.yaml reads as the operations catalogue: every scheduled deployment says when it runs,
in words, with its zone and the same moment in UTC (which the Prefect UI shows)."""

import pytest

from kic.serve import deployments, schedule_in_words


@pytest.mark.parametrize(
    "cron,zone,words",
    [
        ("0 3 * * *", "Asia/Seoul", "every day 03:00 Asia/Seoul (18:00 UTC the day before)"),
        ("0 9 * * 1", "Asia/Seoul", "every Monday 09:00 Asia/Seoul (Monday 00:00 UTC)"),
        ("0 5 * * 1", "Asia/Seoul", "every Monday 05:00 Asia/Seoul (Sunday 20:00 UTC)"),
        ("30 23 * * 7", "America/New_York", "every Sunday 23:30 America/New_York (Monday 04:30 UTC)"),
        ("15 6 * * *", "UTC", "every day 06:15 UTC"),
        ("*/10 * * * *", "UTC", "cron '*/10 * * * *' in UTC"),
    ],
)
def test_a_schedule_in_words(cron, zone, words):
    assert schedule_in_words(cron, zone) == words


def test_each_scheduled_deployment_opens_its_description_with_its_schedule_in_words():
    scheduled = [d for d in deployments() if d.get("schedules")]
    assert {d["name"] for d in scheduled} == {"nightly-refresh", "weekly-recluster"}
    for deployment in scheduled:
        (schedule,) = deployment["schedules"]
        words = schedule_in_words(schedule["cron"], schedule["timezone"])
        assert deployment["description"].startswith(words[0].upper() + words[1:] + ": "), deployment["name"]


def test_the_weekly_run_falls_on_the_same_weekday_in_its_zone_and_in_utc():
    """The Prefect UI shows a run's time in UTC (the browser's zone) and its schedule in the
    schedule's zone: a Monday run must not read Sunday there."""
    (weekly,) = [d for d in deployments() if d["name"] == "weekly-recluster"]
    words = schedule_in_words(weekly["schedules"][0]["cron"], weekly["schedules"][0]["timezone"])
    local_day, utc_day = words.split()[1], words.split("(")[1].split()[0]
    assert local_day == utc_day == "Monday"
