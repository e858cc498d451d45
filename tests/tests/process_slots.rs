//! More live processes than the kernel has process slots: those whose slot was free are
//! counted there, the others in the hash maps, and every count is exact either way.
use phasebox_tests::{TempDir, bpftool, entries_in_use, map_entries, map_of, read_json};

/// More children than PB_SLOTS has slots (1024).
const CHILDREN: u64 = 1500;
const CALLS: u64 = 100;

#[test]
fn processes_beyond_the_slots_are_counted_exactly() {
    let dir = TempDir::new("slots");
    let summary = dir.path("summary.json");
    let (mut run, input) = phasebox_tests::swarm::run_until_ready(&summary, CHILDREN, CALLS);
    // Every child lives: the slots are full and the rest are in the process hash map.
    let slots_map = map_of(run.id(), "PB_SLOTS");
    let slots = entries_in_use(slots_map);
    let all = bpftool(&["map", "show", "id", &slots_map.to_string()])["max_entries"]
        .as_u64()
        .expect("PB_SLOTS's size") as usize;
    let procs = map_entries(map_of(run.id(), "PB_PROCS"));
    eprintln!("{CHILDREN} children: {slots} of {all} slots in use, {procs} in PB_PROCS");
    assert!(
        slots > all / 2,
        "only {slots} of {all} process slots in use"
    );
    assert!(
        procs as u64 >= CHILDREN + 1 - all as u64,
        "{procs} processes in PB_PROCS, with {slots} slots for {} processes",
        CHILDREN + 1
    );
    drop(input);
    let status = run.wait().unwrap();
    assert!(status.success(), "phasebox run: {status}");
    let s = read_json(&summary);
    assert_eq!(s["dropped"], 0);
    let procs = s["processes"].as_array().unwrap();
    let children: Vec<u64> = procs
        .iter()
        .filter_map(|p| p["syscalls"]["getppid"]["calls"].as_u64())
        .collect();
    assert_eq!(
        children.len() as u64,
        CHILDREN,
        "children that called getppid"
    );
    assert!(
        children.iter().all(|&n| n == CALLS),
        "a child's getppid count is not {CALLS}: {:?}",
        children.iter().filter(|&&n| n != CALLS).collect::<Vec<_>>()
    );
    // Every child's exit_group too, counted wherever its process was.
    let exits: u64 = procs
        .iter()
        .filter_map(|p| p["syscalls"]["exit_group"]["calls"].as_u64())
        .sum();
    assert_eq!(
        exits,
        CHILDREN + 1,
        "exit_group of every child and the parent"
    );
}
