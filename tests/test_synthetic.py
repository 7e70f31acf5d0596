from datetime import date, timedelta

import numpy as np

from sandbox.synthetic import GRID_POSTS, Population

DAY = date(2026, 6, 1)


def engagement(population, on):
    er, ar = [], []
    for account in population.accounts:
        profile = population.profile(account, on)
        images = [p for p in profile.posts if p.kind == "image"]
        if images:
            likes = np.mean([p.likes for p in images])
            comments = np.mean([p.comments for p in images])
            er.append((likes + comments) / profile.followers * 100)
            ar.append(comments / (likes + 1) * 100)
    return np.array(er), np.array(ar)


def test_same_seed_same_population_other_seed_another():
    a, b, c = Population(50, 1), Population(50, 1), Population(50, 2)
    assert a.accounts == b.accounts
    assert a.profile(7, DAY) == b.profile(7, DAY)
    assert [x.followers for x in a.accounts] != [x.followers for x in c.accounts]


def test_distribution_resembles_the_studys_cohort():
    er, ar = engagement(Population(1000, 5), DAY)
    assert 0.9 < np.median(er) < 2.2 and 1.2 < np.median(ar) < 3.0  # dense low core
    assert np.percentile(er, 99) > 5 * np.median(er)  # heavy tails
    assert np.percentile(ar, 99) > 5 * np.median(ar)
    assert (er > 15).sum() >= 3 and (ar > 25).sum() >= 3  # a few extreme outliers
    assert (er > 15).mean() < 0.03


def test_profiles_show_a_grid_of_every_kind_and_private_accounts_none():
    population = Population(300, 9)
    kinds, carousel, reels, pinned = set(), 0, 0, 0
    for account in population.accounts:
        profile = population.profile(account, DAY)
        if account.is_private:
            assert profile.posts == ()
            continue
        assert len(profile.posts) == GRID_POSTS
        kinds |= {p.kind for p in profile.posts}
        carousel += sum(p.is_carousel for p in profile.posts)
        reels += sum(p.is_reel for p in profile.posts)
        pinned += sum(p.is_pinned for p in profile.posts)
    assert kinds == {"image", "video", "igtv"}
    assert carousel and reels and pinned
    assert any(a.is_private for a in population.accounts)


def test_days_differ_likes_grow_with_age_and_some_accounts_change_for_good():
    population = Population(200, 4)
    today, tomorrow = population.profile(0, DAY), population.profile(0, DAY + timedelta(days=1))
    assert today.followers != tomorrow.followers
    newest = {p.post_id: p.likes for p in today.posts}
    grown = [p.likes >= newest[p.post_id] for p in tomorrow.posts if p.post_id in newest]
    assert grown and all(grown)
    changing = [a for a in population.accounts if a.change_day is not None]
    assert changing
    a = changing[0]
    before = population.engagement(a, a.change_day - 1)
    after = population.engagement(a, a.change_day)
    assert before != after
