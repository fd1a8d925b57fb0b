# A real one-node Slurm cluster on 127.0.0.1 for the tests, sourced by slurm_e2e.sh:
#   slurm_up DIR     installs slurmctld, slurmd, slurm-client and munge if missing, writes a
#                    configuration into DIR (state, spool, logs, munge key and socket too), starts
#                    munged, slurmctld and slurmd, waits until the node is idle; exports SLURM_CONF
#   slurm_down       stops the daemons slurm_up started (call it from an EXIT trap)
# Root only (SlurmUser=root). No cgroups: proctrack/linuxproc and task/none, so it also runs in a
# chroot (scripts/fresh_root.sh).

slurm_install() {
  local missing=() p
  for p in slurmctld slurmd slurm-client munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "slurm_cluster: installing ${missing[*]}" >&2
  apt-get update -qq
  # The packages' own services (policy-rc.d refuses them): ours run from DIR.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

slurm_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

slurm_up() {
  SLURM_DIR=$1
  slurm_install
  mkdir -p "$SLURM_DIR/state" "$SLURM_DIR/spool" "$SLURM_DIR/munge"
  chmod 700 "$SLURM_DIR/munge"
  mungekey --create --keyfile="$SLURM_DIR/munge/munge.key" --force
  munged --force --socket="$SLURM_DIR/munge/socket" --key-file="$SLURM_DIR/munge/munge.key" \
    --pid-file="$SLURM_DIR/munge/munged.pid" --log-file="$SLURM_DIR/munge/munged.log" \
    --seed-file="$SLURM_DIR/munge/seed"
  local host cpus
  host=$(hostname -s)
  cpus=$(nproc)
  cat > "$SLURM_DIR/slurm.conf" <<EOF
ClusterName=skimtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(slurm_free_port)
SlurmdPort=$(slurm_free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SLURM_DIR/munge/socket
CredType=cred/munge
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/slurmctld.log
SlurmdLogFile=$SLURM_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
JobRequeue=1
ReturnToService=2
KillWait=20
SchedulerParameters=sched_interval=5
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$SLURM_DIR/slurm.conf"
  slurmctld -i
  slurmd
  local i state
  for i in $(seq 1 60); do
    state=$(sinfo -h -o %T 2>/dev/null || true)
    [ "$state" = idle ] && return 0
    sleep 1
  done
  echo "slurm_cluster: the node did not become idle (state '$state')" >&2
  tail -n 20 "$SLURM_DIR/slurmctld.log" "$SLURM_DIR/slurmd.log" >&2 || true
  return 1
}

slurm_down() {
  [ -n "${SLURM_DIR:-}" ] || return 0
  local f pid
  for f in slurmd.pid slurmctld.pid munge/munged.pid; do
    [ -s "$SLURM_DIR/$f" ] || continue
    pid=$(cat "$SLURM_DIR/$f")
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
