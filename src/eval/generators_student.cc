// Student-QA analogue (biathlon-spec D.7; docs/benchmarks/student.md), after the "predict
// student performance from game play" event log: each session plays an educational game in
// three level groups (0-4, 5-12, 13-22), logging ~1,100 events (clicks, hovers, notebook and
// map actions). A latent skill drives both the log and whether the student answers question 18
// correctly: skilled students move on faster, wander less (fewer distinct rooms, texts and
// objects), hover briefly and click near where the game expects. Engagement (an independent
// latent) lengthens sessions without changing correctness, so the features are informative but
// confounded, as in the original.
//
// Tables: `events` (session, level_group, t, the 8 numeric columns averaged by the pipeline
// and the 5 categorical columns it counts distinct values of, as integer codes) and `sessions`
// (session, level_group = "13-22", t = session start, correct). Sessions follow one another in
// time, so a time split of `sessions` splits by student, as the original.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "eval/generator_util.h"

namespace apx::eval::internal {
namespace {

constexpr int kStudentSessions = 4'000;
constexpr double kStudentEvents = 1'100;  // mean events per session at scale 1
constexpr int64_t kStudentStart = 1609459200;  // 2021-01-01; one session every 20 minutes
constexpr int64_t kStudentSpacing = 1200;

double Sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

}  // namespace

Result<Tables> Student(uint64_t seed, double scale, const store::ProgressFn& progress) {
  Rng rng(seed);
  const char* groups[3] = {"0-4", "5-12", "13-22"};
  const double group_share[3] = {0.18, 0.37, 0.45};
  const int group_levels[3][2] = {{0, 4}, {5, 12}, {13, 22}};

  std::vector<store::Column> ev;
  ev.push_back(MakeColumn("session", store::ColumnType::kString));
  ev.push_back(MakeColumn("level_group", store::ColumnType::kString));
  ev.push_back(MakeColumn("t", store::ColumnType::kTimestamp));
  for (const char* name : {"elapsed_time", "level", "page", "room_coor_x", "room_coor_y",
                           "screen_coor_x", "screen_coor_y", "hover_duration", "event_name",
                           "name", "fqid", "room_fqid", "text_fqid"}) {
    ev.push_back(MakeColumn(name, store::ColumnType::kDouble));
  }
  for (const char* g : groups) ev[1].dictionary.emplace_back(g);
  std::vector<store::Column> ses;
  ses.push_back(MakeColumn("session", store::ColumnType::kString));
  ses.push_back(MakeColumn("level_group", store::ColumnType::kString));
  ses.push_back(MakeColumn("t", store::ColumnType::kTimestamp));
  ses.push_back(MakeColumn("correct", store::ColumnType::kDouble));
  for (const char* g : groups) ses[1].dictionary.emplace_back(g);

  for (int s = 0; s < kStudentSessions; ++s) {
    char id[24];
    std::snprintf(id, sizeof(id), "2101%06d", s);
    ev[0].dictionary.emplace_back(id);
    ses[0].dictionary.emplace_back(id);
    const double skill = rng.Normal();
    const double engagement = rng.Normal();
    const int64_t start = kStudentStart + kStudentSpacing * s;
    const double n_events = std::max(
        60.0, kStudentEvents * scale * std::exp(0.25 * engagement - 0.12 * skill + 0.1 * rng.Normal()));
    // Vocabulary actually visited: unskilled students open more texts, rooms and objects.
    const double wander = std::exp(-0.25 * skill + 0.1 * engagement + 0.1 * rng.Normal());
    double elapsed_ms = 0;
    for (int g = 0; g < 3; ++g) {
      const int events = static_cast<int>(n_events * group_share[g]);
      const int lo = group_levels[g][0], hi = group_levels[g][1];
      const int fqids = std::max(4, static_cast<int>(std::lround((20 + 10 * g) * wander)));
      const int texts = std::max(3, static_cast<int>(std::lround((15 + 8 * g) * wander)));
      const int rooms = std::max(2, static_cast<int>(std::lround((4 + 2 * g) * wander)));
      for (int e = 0; e < events; ++e) {
        const double progress_in_group = static_cast<double>(e) / events;
        // Time between events: log-normal, slower for weaker students.
        elapsed_ms += 1000 * std::exp(0.9 - 0.2 * skill + 0.9 * rng.Normal());
        const int level = lo + static_cast<int>(progress_in_group * (hi - lo + 1));
        const int event_name = static_cast<int>(rng.Next() % 11);
        const bool hover = event_name >= 9;
        const double aim_sd = 60 * std::exp(-0.25 * skill);  // how far clicks land from targets
        ev[0].codes.push_back(s);
        ev[1].codes.push_back(g);
        ev[2].ints.push_back(start + static_cast<int64_t>(elapsed_ms / 1000));
        ev[3].doubles.push_back(elapsed_ms);
        ev[4].doubles.push_back(level);
        ev[5].doubles.push_back(static_cast<double>(rng.Next() % 7));
        ev[6].doubles.push_back(100 * level - 800 + aim_sd * rng.Normal());
        ev[7].doubles.push_back(-150 + 20 * std::sin(level) + aim_sd * rng.Normal());
        ev[8].doubles.push_back(480 + 0.6 * aim_sd * rng.Normal());
        ev[9].doubles.push_back(380 + 0.6 * aim_sd * rng.Normal());
        ev[10].doubles.push_back(hover ? 1000 * std::exp(0.2 - 0.3 * skill + rng.Normal()) : 0.0);
        ev[11].doubles.push_back(event_name);
        ev[12].doubles.push_back(static_cast<double>(rng.Next() % 6));
        ev[13].doubles.push_back(100 * g + static_cast<double>(rng.Next() % fqids));
        ev[14].doubles.push_back(20 * g + static_cast<double>(rng.Next() % rooms));
        ev[15].doubles.push_back(100 * g + static_cast<double>(rng.Next() % texts));
      }
    }
    // Question 18 (answered after level group 13-22): ~55 % correct overall.
    const double p = Sigmoid(0.2 + 1.8 * skill + 0.4 * rng.Normal());
    ses[0].codes.push_back(s);
    ses[1].codes.push_back(2);
    ses[2].ints.push_back(start);
    ses[3].doubles.push_back(rng.Uniform() < p ? 1.0 : 0.0);
    if (progress && (s + 1) % 200 == 0) progress(s + 1, kStudentSessions);
  }
  if (progress) progress(kStudentSessions, kStudentSessions);
  Tables tables;
  // Events are not globally time-sorted (sessions overlap in time); Table sorts by t.
  tables.push_back(MakeTable("events", "t", std::move(ev)));
  tables.push_back(MakeTable("sessions", "t", std::move(ses)));
  return tables;
}

}  // namespace apx::eval::internal
