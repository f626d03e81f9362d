// eval/requests.h
//
// Request sets for evaluation, training and calibration: rows drawn from a pipeline's own
// table, each row made a request (its request fields) and a label.
#ifndef APX_EVAL_REQUESTS_H_
#define APX_EVAL_REQUESTS_H_

#include <vector>

#include "common/status.h"
#include "pipeline/pipeline.h"
#include "pipeline/request.h"
#include "pipeline/spec.h"

namespace apx::eval {

// Draws `set` (spec.train or spec.test) from its table: `set.n` rows with time in
// [set.from, set.to), uniformly without replacement, seeded by set.seed and returned in time
// order; each row becomes a request (request fields are read from the table's columns of the
// same names) and its label (spec.label, thresholded for binary tasks). NotFound for an
// unknown table; InvalidArgument when the table has no time column, lacks a request field's
// column, or has fewer than n rows in the range.
Status MakeRequests(const pipeline::Pipeline& pipeline, const pipeline::RequestSetSpec& set,
                    std::vector<pipeline::Request>* requests, std::vector<double>* labels);

}  // namespace apx::eval

#endif  // APX_EVAL_REQUESTS_H_
