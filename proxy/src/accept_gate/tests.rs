use std::future::Future;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::*;

/// Publishes `busy` (per mille) for each worker, as their steer loops would.
fn report(gate: &Gate, busy: &[u32]) {
    for (load, busy) in gate.workers.iter().zip(busy) {
        load.busy.store(*busy, Ordering::Relaxed);
    }
}

/// Runs worker `index`'s decision once and publishes it.
fn step(gate: &Gate, index: usize, trend: &mut Trend) -> bool {
    let on = gate.decide(index, trend);
    gate.workers[index].accepting.store(on, Ordering::Relaxed);
    on
}

/// Runs worker `index`'s decision for `windows` windows of the same load:
/// whether it accepts after each.
fn steps(gate: &Gate, index: usize, trend: &mut Trend, windows: usize) -> Vec<bool> {
    (0..windows).map(|_| step(gate, index, trend)).collect()
}

#[test]
fn the_next_worker_joins_only_when_the_first_is_busy_for_a_tenth_of_a_second() {
    let gate = Gate::new(3);
    assert!(gate.accepting(0));
    assert!(!gate.accepting(1));
    let mut trend: [Trend; 3] = Default::default();
    report(&gate, &[JOIN - 1, 0, 0]);
    assert!(step(&gate, 0, &mut trend[0]));
    assert_eq!(
        steps(&gate, 1, &mut trend[1], 40),
        vec![false; 40],
        "worker 0 keeps up"
    );

    // Spikes of a moderate load: one busy window in four.
    let mut joined = false;
    for window in 0..40 {
        report(&gate, &[if window % 4 == 3 { 1000 } else { 600 }, 0, 0]);
        joined |= step(&gate, 1, &mut trend[1]);
    }
    assert!(!joined, "a 25 ms spike is not a load that needs help");

    // A calm tenth of a second, then a busy one.
    report(&gate, &[0, 0, 0]);
    assert!(!steps(&gate, 1, &mut trend[1], JOIN_WINDOWS).contains(&true));
    report(&gate, &[JOIN, 0, 0]);
    assert_eq!(
        steps(&gate, 1, &mut trend[1], JOIN_WINDOWS),
        [vec![false; JOIN_WINDOWS - 1], vec![true]].concat(),
        "busy for JOIN_WINDOWS windows in a row: worker 1 joins"
    );
    assert!(
        !step(&gate, 2, &mut trend[2]),
        "worker 2 waits until workers 0 and 1 are both busy"
    );
    report(&gate, &[950, 500, 0]);
    assert_eq!(
        steps(&gate, 2, &mut trend[2], 20),
        vec![false; 20],
        "their mean is under JOIN"
    );
    report(&gate, &[950, 700, 0]);
    assert!(steps(&gate, 2, &mut trend[2], JOIN_WINDOWS)
        .last()
        .copied()
        .unwrap());
}

#[test]
fn a_worker_leaves_when_the_others_could_carry_its_load_for_a_second() {
    let gate = Gate::new(3);
    let mut trend: [Trend; 3] = Default::default();
    report(&gate, &[1000, 1000, 0]);
    assert!(steps(&gate, 1, &mut trend[1], JOIN_WINDOWS)[JOIN_WINDOWS - 1]);
    assert!(steps(&gate, 2, &mut trend[2], JOIN_WINDOWS)[JOIN_WINDOWS - 1]);

    // A load two workers would carry only above JOIN: the third stays.
    report(&gate, &[600, 550, 500]);
    assert!(steps(&gate, 2, &mut trend[2], CALM_WINDOWS as usize * 3)
        .iter()
        .all(|on| *on));

    // A load they would carry under JOIN, as measured with the third in
    // (which costs more than the same load on two): after a second, not
    // before, and not while a later one accepts, the third leaves.
    report(&gate, &[550, 550, 450]);
    assert!(step(&gate, 1, &mut trend[1]), "worker 2 still accepts");
    assert_eq!(
        steps(&gate, 2, &mut trend[2], CALM_WINDOWS as usize),
        [vec![true; CALM_WINDOWS as usize - 1], vec![false]].concat()
    );

    // The second's mean decides, not its busiest window: one worker's
    // spikes over a load it carries under JOIN do not keep the other.
    report(&gate, &[0, 0, 0]);
    let mut window = 0;
    let mut stayed = 0;
    while step(&gate, 1, &mut trend[1]) {
        window += 1;
        stayed += 1;
        assert!(stayed <= CALM_WINDOWS, "worker 1 never left");
        let spike = if window % 8 == 0 { 1000 } else { 250 };
        report(&gate, &[spike, 250, 0]);
    }
    assert_eq!(stayed, CALM_WINDOWS - 1);
    assert!(!step(&gate, 2, &mut trend[2]), "worker 1 no longer accepts");
    assert!(gate.accepting(0));
}

#[test]
fn busy_share_is_per_mille_of_the_window() {
    let window = Duration::from_millis(25);
    assert_eq!(busy_share(window, Duration::ZERO), 0);
    assert_eq!(busy_share(window, Duration::from_millis(10)), 400);
    // A thread's CPU time is read a little after the wall clock.
    assert_eq!(busy_share(window, Duration::from_millis(26)), 1000);
    assert_eq!(busy_share(Duration::ZERO, Duration::from_millis(1)), 0);
}

#[test]
fn cpu_time_counts_work_and_not_sleep() {
    let start = cpu_time();
    std::thread::sleep(Duration::from_millis(50));
    let slept = cpu_time() - start;
    assert!(slept < Duration::from_millis(25), "{slept:?} while asleep");
    let start = cpu_time();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut spins = 0u64;
    while cpu_time() - start < Duration::from_millis(20) && Instant::now() < deadline {
        spins = std::hint::black_box(spins + 1);
    }
    assert!(cpu_time() - start >= Duration::from_millis(20));
}

/// Runs `steering` for `windows` windows of the (paused) clock.
async fn steer_for(steering: std::pin::Pin<&mut impl Future<Output = ()>>, windows: u32) {
    run_for(steering, WINDOW * windows).await;
}

/// Wakes resting `steering` with a connection and runs it for `windows`
/// windows, each with a connection of its own.
async fn connections_for(
    gate: &Gate,
    mut steering: std::pin::Pin<&mut impl Future<Output = ()>>,
    windows: usize,
) {
    gate.note_accepted();
    assert!(!gate.resting.load(Ordering::SeqCst));
    // Half a window, so that each window below holds one tick.
    run_for(steering.as_mut(), WINDOW / 2).await;
    for _ in 0..windows {
        gate.note_accepted();
        run_for(steering.as_mut(), WINDOW).await;
    }
}

/// Runs `steering` for `time` of the (paused) clock.
async fn run_for(steering: std::pin::Pin<&mut impl Future<Output = ()>>, time: Duration) {
    let ran = tokio::time::timeout(time, steering).await;
    assert!(ran.is_err(), "a steering loop never ends");
}

#[tokio::test(start_paused = true)]
async fn steering_rests_until_a_connection_arrives_and_then_decides_afresh() {
    let gate = Gate::new(2);
    let (open, on) = watch::channel(false);
    let steering = gate.steer(1, &open);
    tokio::pin!(steering);
    steer_for(steering.as_mut(), 3).await;
    assert!(gate.resting.load(Ordering::SeqCst), "no connection came");

    // Worker 0 is busy, but no connection arrives: nothing to decide.
    report(&gate, &[1000]);
    steer_for(steering.as_mut(), 10).await;
    assert!(!gate.accepting(1) && !*on.borrow());

    // Connections arrive again, for a window less than a join takes (the
    // window in which they stop counts too): no join, and once they stop,
    // steering rests.
    connections_for(&gate, steering.as_mut(), JOIN_WINDOWS - 2).await;
    steer_for(steering.as_mut(), 3).await;
    assert!(gate.resting.load(Ordering::SeqCst), "rests again");
    assert!(!gate.accepting(1) && !*on.borrow());

    // After the rest, the windows before it do not count: a join takes
    // JOIN_WINDOWS windows afresh.
    connections_for(&gate, steering.as_mut(), 1).await;
    assert!(!gate.accepting(1), "joined on windows from before the rest");
    connections_for(&gate, steering.as_mut(), JOIN_WINDOWS).await;
    assert!(gate.accepting(1) && *on.borrow(), "joined the busy worker");
    steer_for(steering.as_mut(), 3).await;
    assert!(gate.resting.load(Ordering::SeqCst), "rests again");
}

#[tokio::test(start_paused = true)]
async fn a_saturated_worker_keeps_steering_awake_until_the_next_one_joins() {
    let gate = Gate::new(2);
    let (open, on) = watch::channel(false);
    let steering = gate.steer(1, &open);
    tokio::pin!(steering);
    steer_for(steering.as_mut(), 3).await;
    assert!(gate.resting.load(Ordering::SeqCst), "no connection came");

    // Worker 0's clients keep it saturated, and no connection arrives: its
    // steering wakes the others', which then measure on.
    gate.workers[0].hot.store(true, Ordering::Relaxed);
    report(&gate, &[1000]);
    gate.wake_resting();
    steer_for(steering.as_mut(), JOIN_WINDOWS as u32 + 1).await;
    assert!(
        gate.accepting(1) && *on.borrow(),
        "joined the saturated worker"
    );
    steer_for(steering.as_mut(), 10).await;
    assert!(!gate.resting.load(Ordering::SeqCst));
    assert_eq!(gate.least_busy(0), Some(0), "room for worker 0's clients");

    // Saturation passes: with no connection arriving, steering rests again.
    gate.workers[0].hot.store(false, Ordering::Relaxed);
    report(&gate, &[shedding::SATURATED - 1]);
    steer_for(steering.as_mut(), 3).await;
    assert!(gate.resting.load(Ordering::SeqCst));
    assert!(gate.accepting(1), "leaving takes a second of calm");
}

#[tokio::test]
async fn a_connection_counted_before_the_rest_begins_ends_it_at_once() {
    let gate = Gate::new(2);
    let seen = gate.accepted.load(Ordering::SeqCst);
    gate.note_accepted();
    tokio::time::timeout(Duration::from_secs(5), gate.rest(seen))
        .await
        .expect("the connection was missed");
    // And one counted while it rests wakes it.
    let seen = gate.accepted.load(Ordering::SeqCst);
    let woken = async {
        tokio::task::yield_now().await;
        gate.note_accepted();
    };
    let (rested, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(5), gate.rest(seen)),
        woken
    );
    rested.expect("the connection did not wake it");
}

/// Connects to `address` and says which of the two listeners took it.
async fn taken_by(
    address: SocketAddr,
    taken: &mut tokio::sync::mpsc::UnboundedReceiver<&'static str>,
) -> &'static str {
    let mut client = TcpStream::connect(address).await.unwrap();
    client.write_all(b"x").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), taken.recv())
        .await
        .expect("no listener took the connection")
        .unwrap()
}

#[tokio::test]
async fn a_closed_gate_leaves_connections_to_the_open_ones_and_reopens() {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let address = socket.local_addr().unwrap();
    let (open_first, first_on) = watch::channel(true);
    let (open_second, second_on) = watch::channel(false);
    let (took, mut taken) = tokio::sync::mpsc::unbounded_channel();
    for (name, on) in [("first", first_on), ("second", second_on)] {
        let mut listener = GatedListener::new(socket.try_clone().unwrap(), on);
        let took = took.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(accepted) = listener.accept().await {
                // Held open, so that the client's write succeeds.
                held.push(accepted.unwrap().0);
                took.send(name).unwrap();
            }
        });
    }
    for _ in 0..5 {
        assert_eq!(taken_by(address, &mut taken).await, "first");
    }
    open_second.send_replace(true);
    open_first.send_replace(false);
    // The listeners see their gates change before the next connection.
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..5 {
        assert_eq!(taken_by(address, &mut taken).await, "second");
    }
    open_first.send_replace(true);
    open_second.send_replace(false);
    // The listeners see their gates change before the next connection.
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..5 {
        assert_eq!(taken_by(address, &mut taken).await, "first");
    }
    // Connections waiting while no gate was open are taken when one opens.
    open_first.send_replace(false);
    // The listeners see their gates change before the next connection.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _waiting = TcpStream::connect(address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        taken.try_recv().is_err(),
        "taken while every gate was closed"
    );
    open_second.send_replace(true);
    let who = tokio::time::timeout(Duration::from_secs(5), taken.recv())
        .await
        .expect("the waiting connection was not taken");
    assert_eq!(who, Some("second"));
}

#[test]
fn a_worker_waiting_to_join_forgets_the_windows_before_its_group_changed() {
    let gate = Gate::new(3);
    let mut trend: [Trend; 3] = Default::default();
    gate.workers[1].accepting.store(true, Ordering::Relaxed);
    report(&gate, &[1000, 1000, 0]);
    assert!(!steps(&gate, 2, &mut trend[2], JOIN_WINDOWS - 1).contains(&true));
    // Worker 1 leaves for a window and comes back: the group worker 2 would
    // join is a new one, whose load starts now.
    gate.workers[1].accepting.store(false, Ordering::Relaxed);
    assert!(!step(&gate, 2, &mut trend[2]));
    gate.workers[1].accepting.store(true, Ordering::Relaxed);
    assert_eq!(
        steps(&gate, 2, &mut trend[2], JOIN_WINDOWS),
        [vec![false; JOIN_WINDOWS - 1], vec![true]].concat()
    );
}
