//! The routing scorer: assign a batch of waiting conversations to agents.
//!
//! Inputs are plain slices (struct-of-arrays), so the binding layer can pass
//! Python `array` buffers without per-item conversion. One call decides a
//! whole backlog against the agents' current state and returns assignments
//! in decision order. Pure: the caller passes `now`.
//!
//! The policy (docs/routing.md):
//! 1. Conversations are considered by priority (high first), then SLA due
//!    time (earliest first), then arrival (oldest first).
//! 2. An agent is eligible for a conversation if it serves the conversation's
//!    queue, is available, is not the conversation's excluded agent and has
//!    room for its cost (`load + cost <= capacity`); ranking also needs
//!    weight > 0 (weight 0 = transfers, dedicated and sticky only).
//! 3. A preferred agent (dedicated, or the last agent within the sticky
//!    window) wins when eligible. If it is not eligible and `wait_until > now`,
//!    the conversation waits for it (and blocks nobody); otherwise normal
//!    ranking applies.
//! 4. Ranking per queue: least load; highest free-capacity ratio; longest
//!    since last assignment; or weighted load (load / weight). Ties go to the
//!    agent that has waited longest since its last assignment (earlier in this
//!    batch counts as more recent than before it), then to the lowest agent
//!    index: deterministic.
//! 5. A conversation that finds no eligible agent blocks its queue's agents for
//!    every later conversation of the same or lower priority in this batch, so
//!    a newer conversation never jumps an older one of equal priority.

/// How agents are ranked in a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    LeastLoad = 0,
    FreeRatio = 1,
    LongestIdle = 2,
    Weighted = 3,
}

impl Ranking {
    pub fn from_code(code: u8) -> Option<Ranking> {
        match code {
            0 => Some(Ranking::LeastLoad),
            1 => Some(Ranking::FreeRatio),
            2 => Some(Ranking::LongestIdle),
            3 => Some(Ranking::Weighted),
            _ => None,
        }
    }
}

/// Why an assignment was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Ranked = 0,
    Dedicated = 1,
    Sticky = 2,
}

/// Which kind of preferred agent a conversation has.
pub const PREFER_NONE: u8 = 0;
pub const PREFER_DEDICATED: u8 = 1;
pub const PREFER_STICKY: u8 = 2;

/// The agents, indexed 0..n. `queues_of(i)` = `queue_ids[queue_offsets[i]..queue_offsets[i+1]]`.
pub struct Agents<'a> {
    pub capacity: &'a [u32],
    pub load: &'a [u32],
    pub weight: &'a [f64],
    pub last_assigned: &'a [f64],
    pub available: &'a [u8],
    pub queue_offsets: &'a [u32],
    pub queue_ids: &'a [u32],
}

/// The waiting conversations, indexed 0..m.
pub struct Waiting<'a> {
    pub queue: &'a [u32],
    pub priority: &'a [i32],
    pub sla_due: &'a [f64],
    pub arrival: &'a [u64],
    pub cost: &'a [u32],
    pub preferred: &'a [i32],
    pub prefer_kind: &'a [u8],
    pub wait_until: &'a [f64],
    /// An agent that must not get this conversation (-1 = none): the one who
    /// did not reply in time, or went offline.
    pub exclude: &'a [i32],
}

/// One decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub conversation: u32,
    pub agent: u32,
    pub rule: Rule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    Lengths(&'static str),
    QueueOutOfRange,
    AgentOutOfRange,
    UnknownRanking(u8),
}

fn check(agents: &Agents, waiting: &Waiting, rankings: &[u8]) -> Result<(), InputError> {
    let n = agents.capacity.len();
    if [agents.load.len(), agents.weight.len(), agents.last_assigned.len(), agents.available.len()]
        .iter()
        .any(|&l| l != n)
        || agents.queue_offsets.len() != n + 1
    {
        return Err(InputError::Lengths("agent arrays differ in length"));
    }
    let offsets_ok = agents.queue_offsets.windows(2).all(|w| w[0] <= w[1])
        && agents.queue_offsets[n] as usize == agents.queue_ids.len()
        && agents.queue_offsets[0] == 0;
    if !offsets_ok {
        return Err(InputError::Lengths("queue_offsets do not index queue_ids"));
    }
    let m = waiting.queue.len();
    if [waiting.priority.len(), waiting.sla_due.len(), waiting.arrival.len(), waiting.cost.len(),
        waiting.preferred.len(), waiting.prefer_kind.len(), waiting.wait_until.len(),
        waiting.exclude.len()]
        .iter()
        .any(|&l| l != m)
    {
        return Err(InputError::Lengths("waiting arrays differ in length"));
    }
    let q = rankings.len() as u32;
    if waiting.queue.iter().chain(agents.queue_ids.iter()).any(|&id| id >= q) {
        return Err(InputError::QueueOutOfRange);
    }
    if waiting.preferred.iter().chain(waiting.exclude.iter()).any(|&a| a >= n as i32 || a < -1) {
        return Err(InputError::AgentOutOfRange);
    }
    if let Some(&bad) = rankings.iter().find(|&&r| Ranking::from_code(r).is_none()) {
        return Err(InputError::UnknownRanking(bad));
    }
    Ok(())
}

/// Map an f64 to a u64 whose unsigned order is `f64::total_cmp` order.
fn total_order_bits(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | (1 << 63) }
}

/// Lower is better; compared as (primary, idle tie-break, index).
fn rank_key(ranking: Ranking, capacity: u32, load: u32, weight: f64, last: f64) -> f64 {
    match ranking {
        Ranking::LeastLoad => load as f64,
        Ranking::FreeRatio => -((capacity - load.min(capacity)) as f64 / capacity as f64),
        Ranking::LongestIdle => last,
        Ranking::Weighted => load as f64 / weight,
    }
}

/// Decide the batch. Returns assignments in decision order.
pub fn assign(
    agents: &Agents,
    waiting: &Waiting,
    rankings: &[u8],
    now: f64,
) -> Result<Vec<Assignment>, InputError> {
    check(agents, waiting, rankings)?;
    let n = agents.capacity.len();
    let queue_count = rankings.len();
    // Agents serving each queue (inverse of the agents' CSR lists).
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); queue_count];
    for agent in 0..n {
        let (lo, hi) = (agents.queue_offsets[agent] as usize, agents.queue_offsets[agent + 1] as usize);
        for &queue in &agents.queue_ids[lo..hi] {
            members[queue as usize].push(agent as u32);
        }
    }
    // Sort plain keys (priority descending, SLA due, arrival, index): cheaper
    // than comparing through the slices, and total (the index makes it unique).
    let mut keyed: Vec<(i64, u64, u64, u32)> = (0..waiting.queue.len())
        .map(|c| (-(waiting.priority[c] as i64), total_order_bits(waiting.sla_due[c]),
                  waiting.arrival[c], c as u32))
        .collect();
    keyed.sort_unstable();
    let order: Vec<u32> = keyed.into_iter().map(|k| k.3).collect();
    let mut load: Vec<u32> = agents.load.to_vec();
    let mut last: Vec<f64> = agents.last_assigned.to_vec();
    // Order of assignments within this batch: all get `now`, so the turn
    // breaks ties between agents assigned in the same call.
    let mut turn: Vec<u64> = vec![0; n];
    // Agents blocked for conversations of priority <= the value (None = free).
    let mut blocked: Vec<Option<i32>> = vec![None; n];
    let mut out = Vec::new();

    // Weight 0 keeps an agent out of ranking only: dedicated, sticky and
    // transferred conversations may still reach it.
    let has_room = |agent: usize, cost: u32, priority: i32, load: &[u32], blocked: &[Option<i32>]| {
        agents.available[agent] != 0
            && load[agent] as u64 + cost as u64 <= agents.capacity[agent] as u64
            && blocked[agent].is_none_or(|p| priority > p)
    };

    for &c in &order {
        let c = c as usize;
        let (queue, cost, priority) = (waiting.queue[c] as usize, waiting.cost[c], waiting.priority[c]);
        let serves = |agent: usize| members[queue].binary_search(&(agent as u32)).is_ok();
        let mut chosen: Option<(usize, Rule)> = None;
        let excluded = waiting.exclude[c];
        let preferred = waiting.preferred[c];
        if preferred >= 0 && waiting.prefer_kind[c] != PREFER_NONE && preferred != excluded {
            let p = preferred as usize;
            if serves(p) && has_room(p, cost, priority, &load, &blocked) {
                let rule = if waiting.prefer_kind[c] == PREFER_DEDICATED { Rule::Dedicated } else { Rule::Sticky };
                chosen = Some((p, rule));
            } else if waiting.wait_until[c] > now {
                continue; // waiting for its preferred agent, by policy
            }
        }
        if chosen.is_none() {
            let ranking = Ranking::from_code(rankings[queue]).unwrap();
            let mut best: Option<(f64, f64, u64, usize)> = None;
            for &agent in &members[queue] {
                let agent = agent as usize;
                if agent as i32 == excluded || agents.weight[agent] <= 0.0
                    || !has_room(agent, cost, priority, &load, &blocked) {
                    continue;
                }
                let key = (
                    rank_key(ranking, agents.capacity[agent], load[agent], agents.weight[agent], last[agent]),
                    last[agent],
                    turn[agent],
                    agent,
                );
                let better = match best {
                    None => true,
                    Some(b) => key.0.total_cmp(&b.0).then(key.1.total_cmp(&b.1))
                        .then(key.2.cmp(&b.2)).then(key.3.cmp(&b.3)).is_lt(),
                };
                if better {
                    best = Some(key);
                }
            }
            chosen = best.map(|(_, _, _, agent)| (agent, Rule::Ranked));
        }
        match chosen {
            Some((agent, rule)) => {
                load[agent] += cost;
                last[agent] = now;
                turn[agent] = out.len() as u64 + 1;
                out.push(Assignment { conversation: c as u32, agent: agent as u32, rule });
            }
            None => {
                for &agent in &members[queue] {
                    let slot = &mut blocked[agent as usize];
                    *slot = Some(slot.map_or(priority, |p| p.max(priority)));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct World {
        capacity: Vec<u32>,
        load: Vec<u32>,
        weight: Vec<f64>,
        last: Vec<f64>,
        available: Vec<u8>,
        offsets: Vec<u32>,
        ids: Vec<u32>,
    }

    impl World {
        fn new(agents: &[(u32, u32, &[u32])]) -> World {
            let mut w = World { capacity: vec![], load: vec![], weight: vec![], last: vec![],
                                available: vec![], offsets: vec![0], ids: vec![] };
            for &(capacity, load, queues) in agents {
                w.capacity.push(capacity);
                w.load.push(load);
                w.weight.push(1.0);
                w.last.push(0.0);
                w.available.push(1);
                w.ids.extend_from_slice(queues);
                w.offsets.push(w.ids.len() as u32);
            }
            w
        }
        fn agents(&self) -> Agents<'_> {
            Agents { capacity: &self.capacity, load: &self.load, weight: &self.weight,
                     last_assigned: &self.last, available: &self.available,
                     queue_offsets: &self.offsets, queue_ids: &self.ids }
        }
    }

    fn run(world: &World, queues: &[u32], priorities: &[i32], rankings: &[u8]) -> Vec<(u32, u32)> {
        let m = queues.len();
        let arrival: Vec<u64> = (0..m as u64).collect();
        let w = Waiting { queue: queues, priority: priorities, sla_due: &vec![0.0; m],
                          arrival: &arrival, cost: &vec![1; m], preferred: &vec![-1; m],
                          prefer_kind: &vec![0; m], wait_until: &vec![0.0; m], exclude: &vec![-1; m] };
        assign(&world.agents(), &w, rankings, 10.0).unwrap().iter()
            .map(|a| (a.conversation, a.agent)).collect()
    }

    #[test]
    fn fills_evenly_by_least_load_and_respects_capacity() {
        let world = World::new(&[(2, 0, &[0]), (2, 0, &[0]), (2, 0, &[0])]);
        let got = run(&world, &[0; 8], &[0; 8], &[0]);
        assert_eq!(got, vec![(0, 0), (1, 1), (2, 2), (3, 0), (4, 1), (5, 2)]);
    }

    #[test]
    fn older_conversation_is_not_jumped_by_a_cheaper_newer_one() {
        let world = World::new(&[(2, 1, &[0])]);
        let arrival = [0u64, 1];
        let w = Waiting { queue: &[0, 0], priority: &[0, 0], sla_due: &[0.0, 0.0], arrival: &arrival,
                          cost: &[2, 1], preferred: &[-1, -1], prefer_kind: &[0, 0], wait_until: &[0.0, 0.0],
                          exclude: &[-1, -1] };
        assert!(assign(&world.agents(), &w, &[0], 0.0).unwrap().is_empty());
    }

    #[test]
    fn higher_priority_goes_first_and_may_pass_blocked_lower_priority() {
        let world = World::new(&[(1, 0, &[0])]);
        assert_eq!(run(&world, &[0, 0], &[0, 5], &[0]), vec![(1, 0)]);
    }

    #[test]
    fn sticky_agent_wins_when_eligible_else_waits_until_deadline() {
        let world = World::new(&[(2, 0, &[0]), (2, 1, &[0])]);
        let mk = |wait: f64| Waiting { queue: &[0], priority: &[0], sla_due: &[0.0], arrival: &[0],
                                       cost: &[1], preferred: &[1], prefer_kind: &[PREFER_STICKY],
                                       wait_until: Box::leak(vec![wait].into_boxed_slice()), exclude: &[-1] };
        let got = assign(&world.agents(), &mk(0.0), &[0], 10.0).unwrap();
        assert_eq!(got[0].agent, 1);
        assert_eq!(got[0].rule, Rule::Sticky);
        let mut full = World::new(&[(2, 0, &[0]), (1, 1, &[0])]);
        full.available[1] = 1;
        assert!(assign(&full.agents(), &mk(20.0), &[0], 10.0).unwrap().is_empty());
        assert_eq!(assign(&full.agents(), &mk(5.0), &[0], 10.0).unwrap()[0].agent, 0);
    }

    #[test]
    fn longest_idle_rotates_and_returning_agents_are_not_flooded() {
        let mut world = World::new(&[(10, 0, &[0]), (10, 0, &[0])]);
        world.last = vec![1.0, 9.0]; // agent 0 returns from a long absence
        let got = run(&world, &[0; 4], &[0; 4], &[2]);
        assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), vec![0, 1, 0, 1]);
    }

    #[test]
    fn zero_weight_and_unavailable_agents_get_nothing() {
        let mut world = World::new(&[(5, 0, &[0]), (5, 0, &[0]), (5, 0, &[0])]);
        world.weight[0] = 0.0;
        world.available[1] = 0;
        assert_eq!(run(&world, &[0, 0], &[0, 0], &[3]), vec![(0, 2), (1, 2)]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let world = World::new(&[(1, 0, &[3])]);
        let w = Waiting { queue: &[0], priority: &[0], sla_due: &[0.0], arrival: &[0], cost: &[1],
                          preferred: &[-1], prefer_kind: &[0], wait_until: &[0.0], exclude: &[-1] };
        assert_eq!(assign(&world.agents(), &w, &[0], 0.0), Err(InputError::QueueOutOfRange));
        assert_eq!(assign(&World::new(&[]).agents(), &w, &[9], 0.0), Err(InputError::UnknownRanking(9)));
    }
}

impl From<InputError> for crate::error::CoreError {
    fn from(err: InputError) -> Self {
        let reason = match err {
            InputError::Lengths(what) => what.to_string(),
            InputError::QueueOutOfRange => "a queue id is out of range".to_string(),
            InputError::AgentOutOfRange => "a preferred agent index is out of range".to_string(),
            InputError::UnknownRanking(code) => format!("unknown ranking code {code}"),
        };
        crate::error::CoreError::InvalidArgument(reason)
    }
}
