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
fn step(gate: &Gate, index: usize, calm: &mut u32) -> bool {
    let on = gate.decide(index, calm);
    gate.workers[index].accepting.store(on, Ordering::Relaxed);
    on
}

#[test]
fn the_first_worker_always_accepts_and_the_next_joins_only_when_it_is_busy() {
    let gate = Gate::new(3);
    assert!(gate.accepting(0));
    assert!(!gate.accepting(1));
    let mut calm = [0; 3];
    report(&gate, &[JOIN - 1, 0, 0]);
    assert!(step(&gate, 0, &mut calm[0]));
    assert!(!step(&gate, 1, &mut calm[1]), "worker 0 keeps up");
    report(&gate, &[JOIN, 0, 0]);
    assert!(
        step(&gate, 1, &mut calm[1]),
        "worker 0 is busy: worker 1 joins"
    );
    assert!(
        !step(&gate, 2, &mut calm[2]),
        "worker 2 waits until workers 0 and 1 are both busy"
    );
    report(&gate, &[950, 500, 0]);
    assert!(!step(&gate, 2, &mut calm[2]), "their mean is under JOIN");
    report(&gate, &[950, 800, 0]);
    assert!(step(&gate, 2, &mut calm[2]));
}

#[test]
fn a_worker_leaves_after_a_calm_second_and_only_from_the_top() {
    let gate = Gate::new(3);
    let mut calm = [0; 3];
    report(&gate, &[1000, 1000, 0]);
    assert!(step(&gate, 1, &mut calm[1]));
    assert!(step(&gate, 2, &mut calm[2]));

    // Load that two workers carry at half their capacity: the third stays.
    report(&gate, &[400, 350, 250]);
    for _ in 0..CALM_WINDOWS * 2 {
        assert!(step(&gate, 2, &mut calm[2]));
    }

    // Load that two workers would carry at under half: the third leaves,
    // but only after CALM_WINDOWS in a row, and not while a later one accepts.
    report(&gate, &[300, 300, 300]);
    assert!(step(&gate, 1, &mut calm[1]), "worker 2 still accepts");
    for _ in 1..CALM_WINDOWS {
        assert!(step(&gate, 2, &mut calm[2]));
    }
    report(&gate, &[300, 300, 500]);
    assert!(
        step(&gate, 2, &mut calm[2]),
        "a busy window starts the count again"
    );
    report(&gate, &[300, 300, 300]);
    for _ in 1..CALM_WINDOWS {
        assert!(step(&gate, 2, &mut calm[2]));
    }
    assert!(!step(&gate, 2, &mut calm[2]));

    // With worker 2 gone, worker 1's own calm second starts.
    report(&gate, &[200, 200, 0]);
    for _ in 1..CALM_WINDOWS {
        assert!(step(&gate, 1, &mut calm[1]));
    }
    assert!(!step(&gate, 1, &mut calm[1]));
    assert!(!step(&gate, 2, &mut calm[2]), "worker 1 no longer accepts");
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
    let ran = tokio::time::timeout(WINDOW * windows, steering).await;
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

    // A connection wakes it: after a whole window it joins, then rests again.
    gate.note_accepted();
    assert!(!gate.resting.load(Ordering::SeqCst));
    steer_for(steering.as_mut(), 3).await;
    assert!(gate.accepting(1) && *on.borrow(), "joined the busy worker");
    assert!(gate.resting.load(Ordering::SeqCst), "rests again");
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
