/* The directory cache (client/dircache.h) on its own, time as an input: when a listing is
 * fetched, what it answers and for how long, and how every change reported to it is seen at once,
 * also when it happens while a listing is being fetched. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "client/dircache.h"

#define TTL 1000

static const struct dfs_fh D = {10, 1};
static const struct dfs_fh D2 = {11, 1};

static struct dfs_attr attr(uint64_t ino, uint64_t size)
{
    return (struct dfs_attr){
        .ino = ino, .gen = 1, .mode = S_IFREG | 0644, .nlink = 1, .size = size};
}

/* Looks name up; returns the answer, *a and *age filled. */
static enum dc_answer look(struct dircache *dc, struct dfs_fh dir, const char *name, uint64_t now,
                           struct dfs_attr *a, uint64_t *age, uint64_t *stamp)
{
    struct dfs_attr x;
    uint64_t ag, st;
    return dc_lookup(dc, dir, name, now, 1, a ? a : &x, age ? age : &ag, stamp ? stamp : &st);
}

/* Lookups until the cache asks for the listing (at most DC_SCAN_LOOKUPS); returns the fetch
 * stamp. */
static uint64_t until_fetch(struct dircache *dc, struct dfs_fh dir, uint64_t now)
{
    uint64_t stamp;
    for (int i = 0; i < DC_SCAN_LOOKUPS; i++) {
        enum dc_answer how = look(dc, dir, "nothing", now, NULL, NULL, &stamp);
        if (how == DC_FETCH)
            return stamp;
        cr_assert_eq(how, DC_ASK);
    }
    cr_assert_fail("no fetch after %d lookups", DC_SCAN_LOOKUPS);
    return 0;
}

/* A listing of files f0..f(n-1), inode 100 + i, size i. */
static int install(struct dircache *dc, struct dfs_fh dir, uint64_t stamp, uint64_t started,
                   size_t n, uint64_t now)
{
    static struct dfs_dirent e[2048];
    static char names[2048][24];
    cr_assert(n <= 2048);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "f%zu", i);
        e[i] = (struct dfs_dirent){.name = names[i], .attr = attr(100 + i, i)};
    }
    return dc_install(dc, dir, stamp, started, e, n, now);
}

Test(dircache, a_directory_scanned_is_listed_once_and_answers_for_ttl)
{
    struct dircache *dc = dc_new(TTL, 100, 1000);
    struct dfs_attr a;
    struct dc_stats st;
    uint64_t age, stamp;

    cr_assert_not_null(dc);
    /* The first lookups go to the masters, then one caller fetches; the others keep asking. */
    stamp = until_fetch(dc, D, 5000);
    cr_assert_eq(look(dc, D, "f1", 5001, NULL, NULL, NULL), DC_ASK);
    cr_assert_eq(install(dc, D, stamp, 5000, 3, 5010), 1);

    cr_assert_eq(look(dc, D, "f2", 5100, &a, &age, NULL), DC_HIT);
    cr_assert_eq(a.ino, 102);
    cr_assert_eq(a.size, 2);
    cr_assert_eq(age, 100, "the age counts from the fetch's start");
    cr_assert_eq(look(dc, D, "f3", 5200, NULL, &age, NULL), DC_ABSENT);
    cr_assert_eq(age, 200);
    cr_assert_eq(look(dc, D, "f0", 5999, NULL, NULL, NULL), DC_HIT);
    /* Other directories are not answered from it. */
    cr_assert_eq(look(dc, D2, "f0", 5999, NULL, NULL, NULL), DC_ASK);
    /* A new generation of the directory's inode number is another directory. */
    cr_assert_eq(look(dc, (struct dfs_fh){10, 2}, "f0", 5999, NULL, NULL, NULL), DC_ASK);
    dc_get_stats(dc, &st);
    cr_assert_eq(st.hits, 3);
    cr_assert_eq(st.absent, 1);
    cr_assert_eq(st.fetches, 1);
    dc_free(dc);
}

Test(dircache, a_listing_expires_after_ttl_and_a_used_one_is_fetched_again_at_once)
{
    struct dircache *dc = dc_new(TTL, 100, 1000);
    uint64_t stamp = until_fetch(dc, D, 0);

    cr_assert_eq(install(dc, D, stamp, 0, 4, 10), 1);
    for (int i = 0; i < DC_SCAN_LOOKUPS; i++)
        cr_assert_eq(look(dc, D, "f1", 500, NULL, NULL, NULL), DC_HIT);
    cr_assert_eq(look(dc, D, "f1", 999, NULL, NULL, NULL), DC_HIT);
    /* At ttl it is gone; it answered well, so the next lookup fetches it again. */
    cr_assert_eq(look(dc, D, "f1", 1000, NULL, NULL, &stamp), DC_FETCH);
    cr_assert_eq(install(dc, D, stamp, 1000, 4, 1000), 1);
    cr_assert_eq(look(dc, D, "f1", 1500, NULL, NULL, NULL), DC_HIT);
    dc_free(dc);
}

Test(dircache, a_listing_that_answered_little_is_not_fetched_again_for_a_while)
{
    struct dircache *dc = dc_new(TTL, 2048, 4096);
    uint64_t stamp = until_fetch(dc, D, 0);

    cr_assert_eq(install(dc, D, stamp, 0, 2048, 0), 1);
    cr_assert_eq(look(dc, D, "f1", 10, NULL, NULL, NULL), DC_HIT); /* 1 of 2048 */
    /* Fewer lookups per ttl than a listing of 2048 must answer to pay (2048 / 64 = 32). */
    for (uint64_t t = 1000; t < 11 * TTL; t += TTL)
        for (int i = 0; i < 31; i++)
            cr_assert_eq(look(dc, D, "f1", t + (uint64_t)i, NULL, NULL, NULL), DC_ASK);
    /* After BACKOFF_TTLS it is fetched again. */
    cr_assert_eq(until_fetch(dc, D, 12 * TTL) != 0, 1);
    cr_assert_eq(install(dc, D, 0, 12 * TTL, 64, 12 * TTL), 0, "a stamp of another fetch");
    dc_free(dc);
}

Test(dircache, a_scan_in_a_backed_off_directory_fetches_as_soon_as_a_listing_would_pay)
{
    struct dircache *dc = dc_new(TTL, 2048, 4096);
    uint64_t stamp = until_fetch(dc, D, 0), st;

    /* A listing of 2048 that answered one name (files being created, say), then a stat of
     * every file: the 32nd lookup within one ttl fetches, not the back-off's end. */
    cr_assert_eq(install(dc, D, stamp, 0, 2048, 0), 1);
    cr_assert_eq(look(dc, D, "f1", 10, NULL, NULL, NULL), DC_HIT);
    for (int i = 0; i < 31; i++)
        cr_assert_eq(look(dc, D, "f1", 1000 + (uint64_t)i, NULL, NULL, NULL), DC_ASK);
    cr_assert_eq(look(dc, D, "f1", 1031, NULL, NULL, &st), DC_FETCH);
    cr_assert_eq(install(dc, D, st, 1031, 2048, 1040), 1);
    cr_assert_eq(look(dc, D, "f7", 1050, NULL, NULL, NULL), DC_HIT);
    /* A failed fetch backs off by time only, however many lookups come. */
    for (int i = 0; i < 2000; i++)
        look(dc, D, "f1", 1060 + (uint64_t)i % 900, NULL, NULL, NULL); /* answered: paid */
    cr_assert_eq(look(dc, D, "f1", 2031, NULL, NULL, &st), DC_FETCH);
    dc_fetch_failed(dc, D, 2040);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(look(dc, D, "f1", 2100 + (uint64_t)i, NULL, NULL, NULL), DC_ASK);
    dc_free(dc);
}

Test(dircache, a_scan_long_after_a_listing_expired_is_a_new_start)
{
    struct dircache *dc = dc_new(TTL, 100, 1000);
    uint64_t stamp = until_fetch(dc, D, 0);

    /* The listing answered little before it expired, but the next lookup comes much later
     * (another program scanning): no back-off, the usual few lookups fetch it again. */
    cr_assert_eq(install(dc, D, stamp, 0, 64, 0), 1);
    cr_assert_eq(look(dc, D, "f1", 10, NULL, NULL, NULL), DC_HIT);
    stamp = until_fetch(dc, D, 30 * TTL);
    cr_assert_eq(install(dc, D, stamp, 30 * TTL, 64, 30 * TTL), 1);
    cr_assert_eq(look(dc, D, "f5", 30 * TTL + 1, NULL, NULL, NULL), DC_HIT);
    dc_free(dc);
}

Test(dircache, lookups_spread_over_time_do_not_fetch)
{
    struct dircache *dc = dc_new(TTL, 100, 1000);

    for (uint64_t t = 0; t < 20 * TTL; t += TTL / 2 + 1)
        cr_assert_eq(look(dc, D, "x", t, NULL, NULL, NULL), DC_ASK);
    dc_free(dc);
}

Test(dircache, a_failed_or_too_big_fetch_backs_off)
{
    struct dircache *dc = dc_new(TTL, 8, 1000);
    uint64_t stamp = until_fetch(dc, D, 0);

    dc_fetch_failed(dc, D, 5);
    for (int i = 0; i < 3 * DC_SCAN_LOOKUPS; i++)
        cr_assert_eq(look(dc, D, "x", 10, NULL, NULL, NULL), DC_ASK);
    /* Later it tries again; 9 entries are more than max_dir: not kept. */
    stamp = until_fetch(dc, D, 20 * TTL);
    cr_assert_eq(install(dc, D, stamp, 20 * TTL, 9, 20 * TTL), 0);
    cr_assert_eq(look(dc, D, "f1", 20 * TTL + 1, NULL, NULL, NULL), DC_ASK);
    dc_free(dc);
}

Test(dircache, max_total_bounds_every_listing_together)
{
    struct dircache *dc = dc_new(TTL, 100, 10);
    struct dc_stats st;
    uint64_t stamp = until_fetch(dc, D, 0);

    cr_assert_eq(install(dc, D, stamp, 0, 8, 0), 1);
    stamp = until_fetch(dc, D2, 0);
    cr_assert_eq(install(dc, D2, stamp, 0, 8, 0), 0, "8 + 8 > 10");
    /* Once the first has expired its room is taken back. */
    stamp = until_fetch(dc, D2, 20 * TTL);
    cr_assert_eq(install(dc, D2, stamp, 20 * TTL, 8, 20 * TTL), 1);
    dc_get_stats(dc, &st);
    cr_assert_eq(st.entries, 8);
    dc_free(dc);
}

Test(dircache, own_creates_removes_and_renames_are_seen_at_once)
{
    struct dircache *dc = dc_new(TTL, 100, 1000);
    struct dfs_attr a = attr(500, 7), got;
    uint64_t stamp = until_fetch(dc, D, 0);

    cr_assert_eq(install(dc, D, stamp, 0, 3, 0), 1);
    stamp = until_fetch(dc, D2, 0);
    cr_assert_eq(install(dc, D2, stamp, 0, 0, 0), 1);

    dc_added(dc, D, "new", &a, 10);
    cr_assert_eq(look(dc, D, "new", 11, &got, NULL, NULL), DC_HIT);
    cr_assert_eq(got.ino, 500);

    dc_removed(dc, D, "f0", 12);
    cr_assert_eq(look(dc, D, "f0", 13, NULL, NULL, NULL), DC_ABSENT);

    /* A rename: the old name is gone, the new one is asked for (its ctime changed) and what the
     * masters answer is kept. */
    dc_renamed(dc, D, "f1", D2, "g1", 0, 14);
    cr_assert_eq(look(dc, D, "f1", 15, NULL, NULL, NULL), DC_ABSENT);
    cr_assert_eq(look(dc, D2, "g1", 15, NULL, NULL, &stamp), DC_ASK);
    got = attr(101, 1);
    dc_learn(dc, D2, "g1", &got, stamp, 15);
    cr_assert_eq(look(dc, D2, "g1", 16, &got, NULL, NULL), DC_HIT);
    cr_assert_eq(got.ino, 101);

    /* An exchange: both names are asked for. */
    dc_renamed(dc, D, "f2", D, "new", 1, 17);
    cr_assert_eq(look(dc, D, "f2", 18, NULL, NULL, NULL), DC_ASK);
    cr_assert_eq(look(dc, D, "new", 18, NULL, NULL, NULL), DC_ASK);
    /* The masters say f2 is absent: so it is from now on. */
    cr_assert_eq(look(dc, D, "f2", 19, NULL, NULL, &stamp), DC_ASK);
    dc_learn(dc, D, "f2", NULL, stamp, 19);
    cr_assert_eq(look(dc, D, "f2", 20, NULL, NULL, NULL), DC_ABSENT);

    /* A change whose outcome is not known (a failure) drops the listing. */
    dc_drop(dc, D, 21);
    cr_assert_eq(look(dc, D, "new", 22, NULL, NULL, NULL), DC_ASK);
    dc_free(dc);
}

Test(dircache, an_inode_changed_through_this_client_is_asked_for_until_learned_again)
{
    struct dircache *dc = dc_new(TTL, 100, 1000);
    struct dfs_attr got;
    uint64_t stamp = until_fetch(dc, D, 0);

    cr_assert_eq(install(dc, D, stamp, 0, 3, 0), 1);
    dc_changed(dc, 101, 5); /* f1 written: its size in the listing is old */
    cr_assert_eq(look(dc, D, "f1", 6, NULL, NULL, &stamp), DC_ASK);
    cr_assert_eq(look(dc, D, "f2", 6, NULL, NULL, NULL), DC_HIT);
    /* The masters' answer, asked after the change, is used. */
    got = attr(101, 4096);
    dc_learn(dc, D, "f1", &got, stamp, 6);
    cr_assert_eq(look(dc, D, "f1", 7, &got, NULL, NULL), DC_HIT);
    cr_assert_eq(got.size, 4096);
    /* One asked before a change is not. */
    dc_changed(dc, 101, 8);
    cr_assert_eq(look(dc, D, "f1", 9, NULL, NULL, &stamp), DC_ASK);
    dc_changed(dc, 101, 10); /* changed again while the question was out */
    got = attr(101, 1);
    dc_learn(dc, D, "f1", &got, stamp, 9);
    cr_assert_eq(look(dc, D, "f1", 11, NULL, NULL, NULL), DC_ASK);

    /* Removing a name of a file also makes its other names (hard links) be asked for. */
    cr_assert_eq(look(dc, D, "f2", 12, NULL, NULL, NULL), DC_HIT);
    stamp = until_fetch(dc, D2, 12);
    struct dfs_dirent link = {.name = "link", .attr = attr(102, 2)};
    cr_assert_eq(dc_install(dc, D2, stamp, 12, &link, 1, 12), 1);
    dc_removed(dc, D, "f2", 13);
    cr_assert_eq(look(dc, D2, "link", 14, NULL, NULL, NULL), DC_ASK);
    dc_free(dc);
}

Test(dircache, changes_made_while_a_listing_is_fetched_are_applied_to_it)
{
    struct dircache *dc = dc_new(TTL, 100, 1000);
    struct dfs_attr a = attr(500, 0), got;
    struct dc_stats st;
    uint64_t stamp = until_fetch(dc, D, 0);

    /* Made while the fetch was out: the listing may or may not hold them. Here it holds the
     * removed f0 (read before the unlink) and lacks "made" (read before the create). */
    dc_added(dc, D, "made", &a, 1);
    dc_removed(dc, D, "f0", 1);
    dc_renamed(dc, D, "f1", D, "f7", 0, 1);
    cr_assert_eq(install(dc, D, stamp, 0, 3, 2), 1);
    cr_assert_eq(look(dc, D, "made", 3, &got, NULL, NULL), DC_HIT);
    cr_assert_eq(got.ino, 500);
    cr_assert_eq(look(dc, D, "f0", 3, NULL, NULL, NULL), DC_ABSENT);
    /* Renamed while no listing said what f7 was (it may have been another name of f1's
     * inode): both names are asked for. */
    cr_assert_eq(look(dc, D, "f1", 3, NULL, NULL, NULL), DC_ASK);
    cr_assert_eq(look(dc, D, "f7", 3, NULL, NULL, NULL), DC_ASK);
    cr_assert_eq(look(dc, D, "f2", 3, NULL, NULL, NULL), DC_HIT);

    /* A change whose outcome is unknown, made while the fetch was out: not kept. */
    stamp = until_fetch(dc, D2, 4);
    dc_drop(dc, D2, 5);
    cr_assert_eq(install(dc, D2, stamp, 4, 3, 6), 0);
    /* Not the directory's fault: it is fetched again at the next lookup. */
    cr_assert_eq(look(dc, D2, "f2", 7, NULL, NULL, NULL), DC_FETCH);
    dc_get_stats(dc, &st);
    cr_assert_eq(st.discarded, 1);
    dc_free(dc);
}

Test(dircache, an_answer_older_than_the_listing_or_a_change_is_not_learned)
{
    struct dircache *dc = dc_new(TTL, 100, 1000);
    struct dfs_attr a = attr(777, 1), got;
    uint64_t asked, stamp;

    /* Asked before the listing was fetched: the listing is newer. */
    cr_assert_eq(look(dc, D, "late", 0, NULL, NULL, &asked), DC_ASK);
    stamp = until_fetch(dc, D, 0);
    cr_assert_eq(install(dc, D, stamp, 0, 3, 0), 1);
    dc_learn(dc, D, "late", &a, asked, 0);
    cr_assert_eq(look(dc, D, "late", 1, NULL, NULL, NULL), DC_ABSENT);
    /* Asked, then a change in the directory, then the answer: not kept. */
    dc_renamed(dc, D, "f0", D, "f9", 0, 2);
    cr_assert_eq(look(dc, D, "f9", 3, NULL, NULL, &asked), DC_ASK);
    dc_removed(dc, D, "f1", 4);
    dc_learn(dc, D, "f9", &a, asked, 3);
    cr_assert_eq(look(dc, D, "f9", 5, &got, NULL, NULL), DC_ASK);
    dc_free(dc);
}

Test(dircache, many_directories_and_changes_stay_bounded)
{
    struct dircache *dc = dc_new(TTL, 100, 1000);
    struct dc_stats st;

    /* One lookup in each of 100,000 directories over time, and as many changed inodes. */
    for (uint64_t i = 0; i < 100000; i++) {
        uint64_t now = i; /* 1 ms apart: old ones are prunable */
        cr_assert_eq(look(dc, (struct dfs_fh){1000 + i, 1}, "x", now, NULL, NULL, NULL), DC_ASK);
        dc_changed(dc, 5000000 + i, now);
    }
    dc_get_stats(dc, &st);
    cr_assert_eq(st.entries, 0);
    cr_assert_lt(st.dirs, 10000, "%zu directories remembered", (size_t)st.dirs);
    cr_assert_lt(st.changed, 10000, "%zu changed inodes remembered", (size_t)st.changed);
    dc_free(dc); /* under the sanitizer build: nothing leaks */
}

/* A file with two names, in two directories: removing or replacing one name through this
 * client, even where no listing is cached, makes the other name's link count be asked for. */
Test(dircache, another_name_of_a_removed_or_replaced_file_is_asked_for)
{
    struct dircache *dc = dc_new(TTL, 100, 1000);
    struct dfs_attr two = attr(300, 5), got;
    struct dfs_dirent e[2] = {{.name = "link", .attr = two},
                              {.name = "single", .attr = attr(301, 1)}};
    uint64_t stamp;

    two.nlink = 2;
    e[0].attr = two;
    stamp = until_fetch(dc, D2, 0);
    cr_assert_eq(dc_install(dc, D2, stamp, 0, e, 2, 0), 1);
    cr_assert_eq(look(dc, D2, "link", 1, NULL, NULL, NULL), DC_HIT);
    dc_removed(dc, D, "the-other-name", 2); /* D has no listing: the inode is not known */
    cr_assert_eq(look(dc, D2, "link", 3, NULL, NULL, &stamp), DC_ASK);
    cr_assert_eq(look(dc, D2, "single", 3, NULL, NULL, NULL), DC_HIT, "one link: unaffected");
    got = attr(300, 5); /* the masters: one link now */
    dc_learn(dc, D2, "link", &got, stamp, 3);
    cr_assert_eq(look(dc, D2, "link", 4, &got, NULL, NULL), DC_HIT);
    cr_assert_eq(got.nlink, 1);
    /* A rename over a name elsewhere does the same. */
    got.nlink = 2;
    cr_assert_eq(look(dc, D2, "link", 5, NULL, NULL, &stamp), DC_HIT);
    dc_learn(dc, D2, "link", &got, stamp, 5);
    dc_renamed(dc, D, "x", D, "y", 0, 6);
    cr_assert_eq(look(dc, D2, "link", 7, NULL, NULL, NULL), DC_ASK);
    dc_free(dc);
}

/* rename(a, b) where a and b are names of one inode changes nothing (the masters do nothing):
 * a is not taken for absent. */
Test(dircache, a_rename_onto_another_name_of_the_same_inode_keeps_the_source)
{
    struct dircache *dc = dc_new(TTL, 100, 1000);
    struct dfs_attr one = attr(400, 1);
    struct dfs_dirent e[3] = {{.name = "a", .attr = one},
                              {.name = "b", .attr = one},
                              {.name = "c", .attr = attr(401, 1)}};
    uint64_t stamp = until_fetch(dc, D, 0);

    cr_assert_eq(dc_install(dc, D, stamp, 0, e, 3, 0), 1);
    dc_renamed(dc, D, "a", D, "b", 0, 1);
    cr_assert_eq(look(dc, D, "a", 2, NULL, NULL, NULL), DC_ASK);
    /* Onto an absent name the source is gone at once. */
    dc_renamed(dc, D, "c", D, "d", 0, 3);
    cr_assert_eq(look(dc, D, "c", 4, NULL, NULL, NULL), DC_ABSENT);
    dc_free(dc);
}
