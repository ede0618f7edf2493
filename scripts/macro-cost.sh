#!/usr/bin/env bash
# What the macros cost a user's build: a crate of three entities of five events each written
# with `#[entity]`, against the same state types, event enums and methods with only serde's
# derives (`serde_only`), and against that crate plus one function per entity that encodes
# and decodes its events and state with serde_json as the runtime does (`serde_used`: serde's
# impls are then compiled, as they are with the macros). Prints the median time to rebuild
# and to re-check each crate (dependencies already built) and the ratios.
#
#   scripts/macro-cost.sh [RUNS]      (default 7; CARGO_TARGET_DIR is honoured)
set -euo pipefail

runs=${1:-7}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target=${CARGO_TARGET_DIR:-$work/target}

mkdir -p "$work/with_macros/src" "$work/serde_only/src" "$work/serde_used/src"
cat >"$work/Cargo.toml" <<TOML
[workspace]
resolver = "2"
members = ["with_macros", "serde_only", "serde_used"]
[profile.dev]
debug = "line-tables-only"
[profile.dev.package."*"]
debug = false
TOML
for crate in with_macros serde_only serde_used; do
  cat >"$work/$crate/Cargo.toml" <<TOML
[package]
name = "$crate"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
eventsourcing = { path = "$repo/eventsourcing" }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
TOML
done
cp "$repo/Cargo.lock" "$work/Cargo.lock"

# entity NAME: five events (one creation, four changes) and one command returning Result.
gen() {
  local kind=$1 name=$2
  local events=(Opened Renamed Tagged Moved Closed)
  if [ "$kind" = macros ]; then
    cat <<RS
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct $name { title: String, tags: Vec<String>, place: (i64, i64), open: bool }

#[entity]
impl $name {
    #[event(Opened)]
    pub fn open(title: String, place: (i64, i64)) -> Self {
        $name { title, tags: Vec::new(), place, open: true }
    }
    #[event(Renamed)]
    fn rename(&mut self, title: String) { self.title = title; }
    #[event(Tagged)]
    fn tag(&mut self, tag: String, #[serde(default)] weight: u32) { let _ = weight; self.tags.push(tag); }
    #[event(Moved)]
    fn move_to(&mut self, x: i64, y: i64) { self.place = (x, y); }
    #[event(Closed)]
    pub fn close(&mut self) { self.open = false; }
    pub fn retitle(&mut self, title: String) -> Result<(), String> {
        if !self.open { return Err("closed".to_owned()); }
        self.rename(title);
        Ok(())
    }
    pub fn tag_once(&mut self, tag: String) -> Result<(), String> {
        if self.tags.contains(&tag) { return Err(tag); }
        self.tag(tag, 1);
        self.move_to(0, 0);
        Ok(())
    }
    pub fn title(&self) -> &str { &self.title }
}
RS
  else
    cat <<RS
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct $name { title: String, tags: Vec<String>, place: (i64, i64), open: bool }

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ${name}Event {
    ${events[0]} { title: String, place: (i64, i64) },
    ${events[1]} { title: String },
    ${events[2]} { tag: String, #[serde(default)] weight: u32 },
    ${events[3]} { x: i64, y: i64 },
    ${events[4]},
}

impl $name {
    pub fn open(title: String, place: (i64, i64)) -> Self {
        $name { title, tags: Vec::new(), place, open: true }
    }
    fn rename(&mut self, title: String) { self.title = title; }
    fn tag(&mut self, tag: String, weight: u32) { let _ = weight; self.tags.push(tag); }
    fn move_to(&mut self, x: i64, y: i64) { self.place = (x, y); }
    pub fn close(&mut self) { self.open = false; }
    pub fn retitle(&mut self, title: String) -> Result<(), String> {
        if !self.open { return Err("closed".to_owned()); }
        self.rename(title);
        Ok(())
    }
    pub fn tag_once(&mut self, tag: String) -> Result<(), String> {
        if self.tags.contains(&tag) { return Err(tag); }
        self.tag(tag, 1);
        self.move_to(0, 0);
        Ok(())
    }
    pub fn title(&self) -> &str { &self.title }
}
RS
  fi
}
{
  echo '#![allow(dead_code)]'
  echo 'use eventsourcing::prelude::*;'
  for n in Ticket Board Label; do gen macros $n; done
} >"$work/with_macros/src/lib.rs"
{
  echo '#![allow(dead_code)]'
  echo 'use serde::{Deserialize, Serialize};'
  for n in Ticket Board Label; do gen serde $n; done
} >"$work/serde_only/src/lib.rs"
{
  cat "$work/serde_only/src/lib.rs"
  for n in Ticket Board Label; do
    cat <<RS
pub fn roundtrip_${n,,}(e: &${n}Event, s: &$n) -> Result<(${n}Event, ${n}Event, $n), serde_json::Error> {
    let bytes = serde_json::to_vec(e)?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)?;
    let state: $n = serde_json::from_slice(&serde_json::to_vec(s)?)?;
    Ok((serde_json::from_slice(&bytes)?, serde_json::from_value(value)?, state))
}
RS
  done
} >"$work/serde_used/src/lib.rs"

cd "$work"
export CARGO_TARGET_DIR=$target CARGO_INCREMENTAL=0
cargo build -q -p with_macros -p serde_only -p serde_used
cargo check -q -p with_macros -p serde_only -p serde_used

# ms taken by `cargo $1 -p $2`, after touching the crate when $3 is "touch"
timed() {
  [ "$3" = touch ] && touch "$work/$2/src/lib.rs"
  local t0 t1
  t0=$(date +%s%N)
  cargo "$1" -q -p "$2"
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}

median() { sort -n | sed -n "$(((runs + 1) / 2))p"; }

# The two crates alternate within each run, so that a change in the machine's load hits both;
# each rebuild has cargo's own no-op time (fingerprints, nothing to compile) taken off.
lines_macro=$(wc -l <"$work/with_macros/src/lib.rs")
printf 'three entities of five events, %s alternating runs, median ms of rustc work (cargo no-op taken off)\n' "$runs"
for cmd in build check; do
  m=() s=() u=()
  for _ in $(seq "$runs"); do
    for crate in with_macros serde_only serde_used; do
      t=$(timed "$cmd" "$crate" touch)
      n=$(timed "$cmd" "$crate" none)
      case $crate in
        with_macros) m+=($((t - n))) ;;
        serde_only) s+=($((t - n))) ;;
        *) u+=($((t - n))) ;;
      esac
    done
  done
  mm=$(printf '%s\n' "${m[@]}" | median)
  sm=$(printf '%s\n' "${s[@]}" | median)
  um=$(printf '%s\n' "${u[@]}" | median)
  printf '%-6s with macros %5d   serde only %5d (ratio %s)   serde used %5d (ratio %s)\n' \
    "$cmd" "$mm" "$sm" "$(awk -v m="$mm" -v s="$sm" 'BEGIN { printf "%.2f", m / s }')" \
    "$um" "$(awk -v m="$mm" -v s="$um" 'BEGIN { printf "%.2f", m / s }')"
done
echo "(source of the macro crate: $lines_macro lines)"
