//! Unit tests of the `Sockets` part: recipient selection and room limits, on sockets built
//! without any connection.

use super::*;

fn rooms(r: &[&str]) -> Vec<String> {
    r.iter().map(|s| s.to_string()).collect()
}

/// Two namespaces; sockets a, b, c in "/" and d in "/x".
fn world() -> (Sockets, [usize; 4]) {
    let mut s = Sockets::new(&rooms(&["/", "/x"]));
    let mut add = |id: &str, ns: usize, session: usize| {
        s.insert(NewSocket {
            id: Some(id.into()),
            ns,
            session,
            user: None,
            claim_rooms: vec![],
            pid: None,
            connected_offset: 0,
            recovered_at: None,
        })
    };
    let a = add("a", 0, 10);
    let b = add("b", 0, 11);
    let c = add("c", 0, 12);
    let d = add("d", 1, 13);
    for (sock, room) in [(a, "r1"), (b, "r1"), (b, "r2"), (c, "r2"), (d, "r1")] {
        assert_eq!(s.join(sock, room), Some(true));
    }
    (s, [a, b, c, d])
}

fn select(s: &mut Sockets, ns: usize, t: Target<'_>) -> Vec<usize> {
    let mut out = Vec::new();
    s.select(ns, &t, |_| false, &mut out);
    out
}

#[test]
fn rooms_union_once_each_in_key_order_within_the_namespace() {
    let (mut s, [a, b, c, _]) = world();
    let r = rooms(&["r2", "r1"]);
    let got = select(
        &mut s,
        0,
        Target {
            rooms: &r,
            ..Default::default()
        },
    );
    assert_eq!(got, vec![a, b, c], "b is in both rooms, d is in /x");
}

#[test]
fn except_rooms_and_except_socket_are_left_out() {
    let (mut s, [a, b, c, _]) = world();
    let r = rooms(&["r1", "r2"]);
    let x = rooms(&["r2"]);
    let got = select(
        &mut s,
        0,
        Target {
            rooms: &r,
            except: &x,
            ..Default::default()
        },
    );
    assert_eq!(got, vec![a]);
    let got = select(
        &mut s,
        0,
        Target {
            rooms: &r,
            except_socket: Some(a),
            ..Default::default()
        },
    );
    assert_eq!(got, vec![b, c]);
}

#[test]
fn sid_rooms_resolve_to_their_socket_only_in_its_namespace() {
    let (mut s, [_, b, _, _]) = world();
    let r = rooms(&["b", "d"]);
    let got = select(
        &mut s,
        0,
        Target {
            rooms: &r,
            ..Default::default()
        },
    );
    assert_eq!(got, vec![b], "d is a socket of /x");
    let x = rooms(&["b"]);
    let all = select(
        &mut s,
        0,
        Target {
            all: true,
            except: &x,
            ..Default::default()
        },
    );
    assert!(!all.contains(&b));
}

#[test]
fn all_is_every_socket_of_the_namespace_ignoring_rooms() {
    let (mut s, [a, b, c, d]) = world();
    let r = rooms(&["nope"]);
    assert_eq!(
        select(
            &mut s,
            0,
            Target {
                rooms: &r,
                all: true,
                ..Default::default()
            }
        ),
        vec![a, b, c]
    );
    assert_eq!(
        select(
            &mut s,
            1,
            Target {
                all: true,
                ..Default::default()
            }
        ),
        vec![d]
    );
}

#[test]
fn volatile_skips_recipients_that_are_behind() {
    let (mut s, [a, _, c, _]) = world();
    let r = rooms(&["r1", "r2"]);
    let mut out = Vec::new();
    let t = Target {
        rooms: &r,
        volatile: true,
        ..Default::default()
    };
    s.select(0, &t, |session| session == 11, &mut out);
    assert_eq!(out, vec![a, c], "b (session 11) is behind");
    let t = Target {
        rooms: &r,
        ..Default::default()
    };
    s.select(0, &t, |session| session == 11, &mut out);
    assert_eq!(out.len(), 3, "not volatile: nobody is skipped");
}

#[test]
fn room_limit_and_leave() {
    let (mut s, [a, ..]) = world();
    for i in 1..MAX_ROOMS_PER_SOCKET {
        assert_eq!(s.join(a, &format!("x{i}")), Some(true));
    }
    assert_eq!(s.join(a, "one-too-many"), None);
    assert_eq!(s.join(a, "r1"), Some(false), "already in: not refused");
    assert!(s.leave(a, "r1"));
    assert!(!s.leave(a, "r1"));
    assert_eq!(s.room_len(0, "r1"), 1);
}

#[test]
fn minted_and_kept_ids_resolve_and_go_with_their_socket() {
    let mut s = Sockets::new(&rooms(&["/"]));
    let new = |id: Option<String>| NewSocket {
        id,
        ns: 0,
        session: 1,
        user: None,
        claim_rooms: vec![],
        pid: None,
        connected_offset: 0,
        recovered_at: None,
    };
    let minted = s.insert(new(None));
    let minted_id = s.get(minted).unwrap().id.clone();
    assert_eq!(crate::engineio::slot_of(&minted_id), Some(minted));
    // A recovered socket keeps an id minted elsewhere; this one names the minted socket's slot.
    let kept_id = format!("{}{}", &crate::engineio::new_id(), &minted_id[22..]);
    let kept = s.insert(new(Some(kept_id.clone())));
    assert_eq!(s.by_id(&minted_id), Some(minted));
    assert_eq!(
        s.by_id(&kept_id),
        Some(kept),
        "found through the foreign ids"
    );
    assert_eq!(s.members(0, &kept_id), vec![kept], "sid room of a kept id");
    assert_eq!(
        s.by_id(&format!("x{}", &minted_id[1..])),
        None,
        "a guessed id"
    );
    s.remove(kept);
    assert_eq!(s.by_id(&kept_id), None);
    s.remove(minted);
    assert_eq!(s.by_id(&minted_id), None);
    let reused = s.insert(new(None));
    assert_eq!(reused, minted, "slot reused");
    assert_eq!(
        s.by_id(&minted_id),
        None,
        "a stale id does not name the new socket"
    );
}

#[test]
fn a_room_goes_from_one_member_to_many_and_back_without_losing_anyone() {
    let (mut s, [a, b, c, _]) = world();
    // r3: one member (inline), then three (a set), then back down to one, then gone.
    assert_eq!(s.join(a, "r3"), Some(true));
    assert_eq!(s.members(0, "r3"), vec![a]);
    assert_eq!(s.join(a, "r3"), Some(false));
    assert_eq!(s.room_len(0, "r3"), 1);
    s.join(b, "r3");
    s.join(c, "r3");
    let mut m = s.members(0, "r3");
    m.sort_unstable();
    assert_eq!(m, vec![a, b, c]);
    let sel = select(
        &mut s,
        0,
        Target {
            rooms: &rooms(&["r3"]),
            ..Target::default()
        },
    );
    assert_eq!(sel, vec![a, b, c]);
    assert!(s.leave(a, "r3") && s.leave(c, "r3"));
    assert_eq!(s.members(0, "r3"), vec![b]);
    let sel = select(
        &mut s,
        0,
        Target {
            rooms: &rooms(&["r3"]),
            ..Target::default()
        },
    );
    assert_eq!(sel, vec![b]);
    let before = s.room_count();
    assert!(s.leave(b, "r3"));
    assert_eq!(s.room_len(0, "r3"), 0);
    assert_eq!(s.room_count(), before - 1, "an empty room is dropped");
}

/// A user's own room lives in the user index, not the room map: it selects, excludes,
/// counts and lists like any room, per namespace, with an explicit member beside it.
#[test]
fn own_user_rooms_are_implicit_and_behave_as_rooms() {
    let mut s = Sockets::new(&rooms(&["/", "/x"]));
    let mut add = |id: &str, ns: usize, user: Option<&str>| {
        s.insert(NewSocket {
            id: Some(id.into()),
            ns,
            session: 1,
            user: user.map(str::to_owned),
            claim_rooms: vec![],
            pid: None,
            connected_offset: 0,
            recovered_at: None,
        })
    };
    let a = add("a", 0, Some("u1"));
    let b = add("b", 0, Some("u1"));
    let c = add("c", 1, Some("u1"));
    let d = add("d", 0, Some("u2"));
    for x in [a, b, c, d] {
        let own = format!("user:{}", s.user(x).unwrap());
        assert_eq!(s.join(x, &own), Some(true));
        assert_eq!(s.join(x, &own), Some(false), "joined once");
    }
    assert_eq!(s.room_count(), 2, "user:u1 and user:u2, no room map entry");
    assert!(s.get(a).unwrap().rooms().is_empty());
    assert_eq!(s.get(a).unwrap().room_list(), rooms(&["user:u1"]));
    assert!(s.in_room(a, "user:u1") && !s.in_room(a, "user:u2"));
    let u1 = rooms(&["user:u1"]);
    let to_u1 = |s: &mut Sockets, ns| {
        select(
            s,
            ns,
            Target {
                rooms: &u1,
                ..Default::default()
            },
        )
    };
    assert_eq!(to_u1(&mut s, 0), vec![a, b], "c is in /x");
    assert_eq!(to_u1(&mut s, 1), vec![c]);
    assert_eq!(s.members(0, "user:u1"), vec![a, b]);
    assert_eq!(s.room_len(0, "user:u1"), 2);
    // Another user's room joined explicitly (the Admin UI can) is an ordinary member.
    assert_eq!(s.join(d, "user:u1"), Some(true));
    assert_eq!(s.members(0, "user:u1"), vec![a, b, d]);
    assert_eq!(s.room_len(0, "user:u1"), 3);
    let all = rooms(&["user:u1", "user:u2"]);
    let got = select(
        &mut s,
        0,
        Target {
            rooms: &all,
            except: &u1,
            ..Default::default()
        },
    );
    assert!(got.is_empty(), "every one of them is in user:u1: {got:?}");
    let mut names = s.room_names(0);
    names.sort();
    assert_eq!(names, rooms(&["a", "b", "d", "user:u1", "user:u2"]));
    // Leaving: the user index forgets a user with no socket in its room.
    assert!(s.leave(d, "user:u1") && s.leave(d, "user:u2"));
    assert!(!s.leave(d, "user:u2"), "left already");
    assert_eq!(s.room_count(), 1);
    for x in [a, b, c] {
        assert!(s.leave(x, "user:u1"));
        assert!(s.remove(x).is_some());
    }
    assert!(s.remove(d).is_some());
    assert_eq!(s.room_count(), 0);
    assert!(s.users.is_empty());
}

/// The own user room counts toward the room limit, as when it was an ordinary room.
#[test]
fn the_own_user_room_counts_toward_the_room_limit() {
    let mut s = Sockets::new(&rooms(&["/"]));
    let a = s.insert(NewSocket {
        id: None,
        ns: 0,
        session: 1,
        user: Some("u1".into()),
        claim_rooms: vec![],
        pid: None,
        connected_offset: 0,
        recovered_at: None,
    });
    assert_eq!(s.join(a, "user:u1"), Some(true));
    for i in 1..MAX_ROOMS_PER_SOCKET {
        assert_eq!(s.join(a, &format!("x{i}")), Some(true));
    }
    assert_eq!(s.join(a, "one-too-many"), None);
    assert!(s.leave(a, "user:u1"));
    assert_eq!(s.join(a, "now-there-is-room"), Some(true));
}
