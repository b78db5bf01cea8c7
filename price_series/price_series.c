/*
 * price_series: one ordered pass over a symbol's trading days (README.md states the contract).
 *
 * The aggregate price_series.trading_days(kept_day_number, close, high, low, adj_close,
 * resume_state), used as a window function in date order, returns for each day every value the
 * trading days model stores: the day's number, the moving windows (SMAs, standard deviations,
 * 252-day extremes, from a ring of the last 252 days) and the recursive indicators (EMA, MACD,
 * RSI, ATR: from the day before, TA-Lib's conventions and order of operations).
 *
 * Why C: as SQL (numeric running sums, lags, a PL/pgSQL step per row) the same values cost some
 * 60 us a row; here about 6 (docs/benchmarks.md). Sums over a window are taken afresh each day, oldest value first,
 * in long double, and variances in two passes: no running sum carries rounding from one day to
 * the next, so nothing cancels over a long history.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(trading_days_step);
PG_FUNCTION_INFO_V1(trading_days_final);

/* The longest window: high_252, low_252, volatility_252. */
#define LONGEST_WINDOW 252

/* TA-Lib's zero (TA_IS_ZERO): an RSI whose averages sum below it is 0. */
#define TA_ZERO 1e-8

/* The attributes of price_series.trading_day, in its order (price_series--*.sql). */
enum output
{
	OUT_TRADING_DAY_NUMBER,
	OUT_SMA_20,
	OUT_SMA_30,
	OUT_SMA_50,
	OUT_SMA_200,
	OUT_SMA_ADJUSTED_50,
	OUT_SMA_ADJUSTED_200,
	OUT_EMA_12,
	OUT_EMA_26,
	OUT_EMA_50,
	OUT_EMA_200,
	OUT_MACD_FAST_EMA,
	OUT_MACD,
	OUT_MACD_SIGNAL,
	OUT_RSI_AVERAGE_GAIN,
	OUT_RSI_AVERAGE_LOSS,
	OUT_RSI_14,
	OUT_ATR_14,
	OUT_RSI_ADJUSTED_AVERAGE_GAIN,
	OUT_RSI_ADJUSTED_AVERAGE_LOSS,
	OUT_RSI_ADJUSTED_14,
	OUT_BOLLINGER_UPPER,
	OUT_BOLLINGER_LOWER,
	OUT_RETURN_SIMPLE,
	OUT_RETURN_LOG,
	OUT_VOLATILITY_20,
	OUT_VOLATILITY_252,
	OUT_HIGH_252,
	OUT_LOW_252,
	OUTPUTS
};

/* The slots of resume_state: a stored day's recursive values (README.md). */
enum resume_slot
{
	RESUME_EMA_12,
	RESUME_EMA_26,
	RESUME_EMA_50,
	RESUME_EMA_200,
	RESUME_MACD_FAST_EMA,
	RESUME_MACD,
	RESUME_MACD_SIGNAL,
	RESUME_RSI_AVERAGE_GAIN,
	RESUME_RSI_AVERAGE_LOSS,
	RESUME_ATR_14,
	RESUME_RSI_ADJUSTED_AVERAGE_GAIN,
	RESUME_RSI_ADJUSTED_AVERAGE_LOSS,
	RESUME_SLOTS
};

/*
 * Inside the pass a missing value is NaN: it propagates through arithmetic as SQL's null does,
 * and becomes null on the way out. Staging never stores NaN (safe_cast_double rejects it).
 */
#define MISSING NAN
#define KNOWN(x) (!isnan(x))

typedef struct RecursiveState
{
	double		ema_12;
	double		ema_26;
	double		ema_50;
	double		ema_200;
	double		macd_fast_ema;
	double		macd_seed_sum;
	double		macd;
	double		macd_signal;
	double		rsi_average_gain;
	double		rsi_average_loss;
	double		true_ranges_seen;
	double		true_range_seed_sum;
	double		atr_14;
	double		adjusted_changes_seen;
	double		rsi_adjusted_average_gain;
	double		rsi_adjusted_average_loss;
} RecursiveState;

typedef struct TradingDaysState
{
	int64		day_number;		/* the last day's trading_day_number */
	bool		last_was_kept;	/* the last day is a stored one, passed for its values only */
	bool		resume_missing; /* the last stored day came without its resume_state */
	bool		replaying;		/* the stored days began on the symbol's first: each is computed again */
	int			days;			/* days in the ring, at most LONGEST_WINDOW */
	int			newest;			/* the ring slot of the last day */
	double		close[LONGEST_WINDOW];
	double		adj_close[LONGEST_WINDOW];
	double		return_log[LONGEST_WINDOW];
	RecursiveState recursive;
	double		out[OUTPUTS];
} TradingDaysState;

/* The slot of the day `back` days before the last one (0: the last one). */
static inline int
ring_slot(const TradingDaysState *state, int back)
{
	int			slot = state->newest - back;

	return slot < 0 ? slot + LONGEST_WINDOW : slot;
}

/* The mean of the last n values of a ring series (oldest first), or MISSING when fewer than n
 * days are in the ring or one of the n is missing. */
static double
window_mean(const TradingDaysState *state, const double *series, int n)
{
	long double sum = 0;

	if (state->days < n)
		return MISSING;
	for (int back = n - 1; back >= 0; back--)
	{
		double		value = series[ring_slot(state, back)];

		if (!KNOWN(value))
			return MISSING;
		sum += value;
	}
	return (double) (sum / n);
}

/* The variance of the last n values (divisor n - ddof), in two passes, or MISSING. */
static double
window_variance(const TradingDaysState *state, const double *series, int n, int ddof)
{
	double		mean = window_mean(state, series, n);
	long double squares = 0;

	if (!KNOWN(mean))
		return MISSING;
	for (int back = n - 1; back >= 0; back--)
	{
		long double deviation = (long double) series[ring_slot(state, back)] - mean;

		squares += deviation * deviation;
	}
	return (double) (squares / (n - ddof));
}

/* An EMA of period n (TA-Lib): the SMA of the first n closes on day index n - 1, then
 * (close - ema) * 2 / (n + 1) + ema. */
static inline double
ema_step(double previous, double close, double day_index, int n, double seed)
{
	if (day_index == n - 1)
		return seed;
	if (day_index > n - 1)
		return (close - previous) * (2.0 / (n + 1)) + previous;
	return MISSING;
}

/* RSI from Wilder's averages: 0 when both are below TA-Lib's zero. */
static inline double
rsi_value(double gain, double loss)
{
	double		total = gain + loss;

	if (-TA_ZERO < total && total < TA_ZERO)
		return 0;
	return 100 * (gain / total);
}

static void
start_recursive(RecursiveState *r)
{
	r->ema_12 = r->ema_26 = r->ema_50 = r->ema_200 = MISSING;
	r->macd_fast_ema = r->macd = r->macd_signal = MISSING;
	r->macd_seed_sum = 0;
	r->rsi_average_gain = r->rsi_average_loss = 0;
	r->true_ranges_seen = r->true_range_seed_sum = 0;
	r->atr_14 = MISSING;
	r->adjusted_changes_seen = 0;
	r->rsi_adjusted_average_gain = r->rsi_adjusted_average_loss = 0;
}

/*
 * The state after a stored day whose indicators have all started (the model's resume_when):
 * every seed is over, so the seed sums are no longer read. With the windows (RESUME_SLOTS +
 * 2 * LONGEST_WINDOW values: then the last 252 closes and the last 252 adj_closes, oldest
 * first, the stored day's last) the ring is loaded from them too, as 252 stored days passed
 * one by one would leave it: one row stands for them.
 */
static void
resume_from_state(TradingDaysState *state, ArrayType *resume_state, double close)
{
	RecursiveState *r = &state->recursive;
	Datum	   *values;
	bool	   *nulls;
	int			count;
	double		slot[RESUME_SLOTS];

	if (ARR_NDIM(resume_state) > 1 || ARR_ELEMTYPE(resume_state) != FLOAT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("price_series.trading_days: resume_state must be a one-dimensional double precision array")));
	deconstruct_array(resume_state, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &values, &nulls, &count);
	if (count != RESUME_SLOTS && count != RESUME_SLOTS + 2 * LONGEST_WINDOW)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("price_series.trading_days: resume_state has %d values, not %d (or %d with the windows)",
						count, RESUME_SLOTS, RESUME_SLOTS + 2 * LONGEST_WINDOW)));
	for (int i = 0; i < RESUME_SLOTS; i++)
		slot[i] = nulls[i] ? MISSING : DatumGetFloat8(values[i]);

	r->ema_12 = slot[RESUME_EMA_12];
	r->ema_26 = slot[RESUME_EMA_26];
	r->ema_50 = slot[RESUME_EMA_50];
	r->ema_200 = slot[RESUME_EMA_200];
	r->macd_fast_ema = slot[RESUME_MACD_FAST_EMA];
	r->macd_seed_sum = 0;
	r->macd = slot[RESUME_MACD];
	r->macd_signal = slot[RESUME_MACD_SIGNAL];
	r->rsi_average_gain = slot[RESUME_RSI_AVERAGE_GAIN];
	r->rsi_average_loss = slot[RESUME_RSI_AVERAGE_LOSS];
	r->true_ranges_seen = 15;
	r->true_range_seed_sum = 0;
	r->atr_14 = slot[RESUME_ATR_14];
	r->adjusted_changes_seen = 15;
	r->rsi_adjusted_average_gain = slot[RESUME_RSI_ADJUSTED_AVERAGE_GAIN];
	r->rsi_adjusted_average_loss = slot[RESUME_RSI_ADJUSTED_AVERAGE_LOSS];

	if (count == RESUME_SLOTS)
		return;
	for (int day = 0; day < LONGEST_WINDOW; day++)
	{
		int			close_at = RESUME_SLOTS + day;
		int			adj_close_at = RESUME_SLOTS + LONGEST_WINDOW + day;
		double		adj_close = nulls[adj_close_at] ? MISSING : DatumGetFloat8(values[adj_close_at]);
		double		previous_adj_close = day > 0 ? state->adj_close[day - 1] : MISSING;

		if (nulls[close_at])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("price_series.trading_days: resume_state's windows lack a close (day %d of %d)",
							day + 1, LONGEST_WINDOW)));
		state->close[day] = DatumGetFloat8(values[close_at]);
		state->adj_close[day] = adj_close;
		state->return_log[day] = adj_close > 0 && previous_adj_close > 0
			? log(adj_close / previous_adj_close) : MISSING;
	}
	/* windows kept elsewhere than the row must end on it: else they are another day's */
	if (state->close[LONGEST_WINDOW - 1] != close)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("price_series.trading_days: resume_state's windows end on the close %g, the stored day's is %g",
						state->close[LONGEST_WINDOW - 1], close),
				 errhint("The windows kept beside the table are out of step with its rows: empty them (each symbol's are read again as it changes) or build the table again.")));
	state->days = LONGEST_WINDOW;
	state->newest = LONGEST_WINDOW - 1;
}

/*
 * The recursive indicators of the last day (index i from 0, TA-Lib's `today`), from the state
 * after the day before; previous_close and previous_adj_close are that day's (MISSING on day 0).
 */
static void
step_recursive(TradingDaysState *state, double close, double high, double low, double adj_close,
			   double previous_close, double previous_adj_close)
{
	RecursiveState *r = &state->recursive;
	double	   *out = state->out;
	double		i = (double) (state->day_number - 1);
	double		ema_26;
	double		macd_fast_ema;
	double		macd_line;
	double		change;
	double		true_range = MISSING;
	double		adjusted_change;

	out[OUT_EMA_12] = r->ema_12 = ema_step(r->ema_12, close, i, 12,
										   i == 11 ? window_mean(state, state->close, 12) : MISSING);
	ema_26 = ema_step(r->ema_26, close, i, 26, i == 25 ? window_mean(state, state->close, 26) : MISSING);
	out[OUT_EMA_50] = r->ema_50 = ema_step(r->ema_50, close, i, 50,
										   i == 49 ? window_mean(state, state->close, 50) : MISSING);
	out[OUT_EMA_200] = r->ema_200 = ema_step(r->ema_200, close, i, 200,
											 i == 199 ? window_mean(state, state->close, 200) : MISSING);

	/* MACD (12, 26, 9), TA-Lib: the fast EMA starts where the slow one does (day 25, from the
	 * SMA of closes 14..25); the signal is the EMA 9 of the line from day 25 (the average of its
	 * first 9 values on day 33), so line, signal and histogram start on day 33. */
	if (i == 25)
		macd_fast_ema = window_mean(state, state->close, 12);
	else if (i > 25)
		macd_fast_ema = (close - r->macd_fast_ema) * (2.0 / 13) + r->macd_fast_ema;
	else
		macd_fast_ema = MISSING;
	macd_line = macd_fast_ema - ema_26;
	if (i <= 33)
		r->macd_seed_sum += KNOWN(macd_line) ? macd_line : 0;
	if (i == 33)
		r->macd_signal = r->macd_seed_sum / 9;
	else if (i > 33)
		r->macd_signal = (macd_line - r->macd_signal) * (2.0 / 10) + r->macd_signal;
	else
		r->macd_signal = MISSING;
	r->ema_26 = ema_26;
	r->macd_fast_ema = macd_fast_ema;
	r->macd = i >= 33 ? macd_line : MISSING;
	out[OUT_EMA_26] = ema_26;
	out[OUT_MACD_FAST_EMA] = macd_fast_ema;
	out[OUT_MACD] = r->macd;
	out[OUT_MACD_SIGNAL] = r->macd_signal;

	/* RSI 14, Wilder (TA-Lib): the averages of the first 14 gains and losses, then average * 13
	 * + today's, over 14 (the sums while i < 14). */
	change = close - previous_close;
	if (i == 0)
	{
		r->rsi_average_gain = 0;
		r->rsi_average_loss = 0;
	}
	else
	{
		double		gain = KNOWN(change) && change > 0 ? change : 0;
		double		loss = KNOWN(change) && change < 0 ? -change : 0;

		if (i < 14)
		{
			r->rsi_average_gain = r->rsi_average_gain + gain;
			r->rsi_average_loss = r->rsi_average_loss + loss;
		}
		else if (i == 14)
		{
			r->rsi_average_gain = (r->rsi_average_gain + gain) / 14;
			r->rsi_average_loss = (r->rsi_average_loss + loss) / 14;
		}
		else
		{
			r->rsi_average_gain = (r->rsi_average_gain * 13 + gain) / 14;
			r->rsi_average_loss = (r->rsi_average_loss * 13 + loss) / 14;
		}
	}
	out[OUT_RSI_AVERAGE_GAIN] = r->rsi_average_gain;
	out[OUT_RSI_AVERAGE_LOSS] = r->rsi_average_loss;
	out[OUT_RSI_14] = i < 14 ? MISSING : rsi_value(r->rsi_average_gain, r->rsi_average_loss);

	/* ATR 14, Wilder (TA-Lib): the average of the first 14 true ranges, then average * 13 +
	 * today's, over 14. A day without high or low has no true range: the average is carried
	 * unchanged and the next day's range starts from this day's close. */
	if (i > 0 && KNOWN(high) && KNOWN(low))
	{
		true_range = high - low;
		if (KNOWN(previous_close))
		{
			true_range = fmax(true_range, fabs(previous_close - high));
			true_range = fmax(true_range, fabs(previous_close - low));
		}
	}
	if (KNOWN(true_range))
	{
		r->true_ranges_seen += 1;
		if (r->true_ranges_seen <= 14)
			r->true_range_seed_sum += true_range;
		if (r->true_ranges_seen == 14)
			r->atr_14 = r->true_range_seed_sum / 14;
		else if (r->true_ranges_seen > 14)
			r->atr_14 = (r->atr_14 * 13 + true_range) / 14;
		else
			r->atr_14 = MISSING;
	}
	out[OUT_ATR_14] = r->atr_14;

	/* The same RSI on adj_close, for the screener's flags: a split the close is not adjusted for
	 * is no loss there. A day or its day before without adj_close gives no change: the averages
	 * are carried. */
	adjusted_change = adj_close - previous_adj_close;
	if (KNOWN(adjusted_change))
	{
		r->adjusted_changes_seen += 1;
		if (r->adjusted_changes_seen > 14)
		{
			r->rsi_adjusted_average_gain *= 13;
			r->rsi_adjusted_average_loss *= 13;
		}
		r->rsi_adjusted_average_gain += adjusted_change > 0 ? adjusted_change : 0;
		r->rsi_adjusted_average_loss -= adjusted_change < 0 ? adjusted_change : 0;
		if (r->adjusted_changes_seen >= 14)
		{
			r->rsi_adjusted_average_gain /= 14;
			r->rsi_adjusted_average_loss /= 14;
		}
	}
	out[OUT_RSI_ADJUSTED_AVERAGE_GAIN] = r->rsi_adjusted_average_gain;
	out[OUT_RSI_ADJUSTED_AVERAGE_LOSS] = r->rsi_adjusted_average_loss;
	out[OUT_RSI_ADJUSTED_14] = r->adjusted_changes_seen < 14
		? MISSING : rsi_value(r->rsi_adjusted_average_gain, r->rsi_adjusted_average_loss);
}

/* The moving windows of the last day (every window ends on it). */
static void
step_windows(TradingDaysState *state, double close, double adj_close, double previous_adj_close)
{
	double	   *out = state->out;
	double		variance_20;
	double		deviation_20;
	double		high = close;
	double		low = close;

	/* the SMAs of the close */
	out[OUT_SMA_20] = out[OUT_SMA_30] = out[OUT_SMA_50] = out[OUT_SMA_200] = MISSING;
	if (state->day_number >= 20)
	{
		out[OUT_SMA_20] = window_mean(state, state->close, 20);
		if (state->day_number >= 30)
			out[OUT_SMA_30] = window_mean(state, state->close, 30);
		if (state->day_number >= 50)
			out[OUT_SMA_50] = window_mean(state, state->close, 50);
		if (state->day_number >= 200)
			out[OUT_SMA_200] = window_mean(state, state->close, 200);
	}
	/* the screener's crosses, on a split-consistent series (missing while an adj_close in the
	 * window is) */
	out[OUT_SMA_ADJUSTED_50] = window_mean(state, state->adj_close, 50);
	out[OUT_SMA_ADJUSTED_200] = window_mean(state, state->adj_close, 200);

	/* Bollinger (20, 2), TA-Lib: the population standard deviation, 0 below its zero */
	variance_20 = state->day_number >= 20 ? window_variance(state, state->close, 20, 0) : MISSING;
	deviation_20 = KNOWN(variance_20) && variance_20 >= TA_ZERO ? sqrt(variance_20) : 0;
	out[OUT_BOLLINGER_UPPER] = out[OUT_SMA_20] + 2 * deviation_20;
	out[OUT_BOLLINGER_LOWER] = out[OUT_SMA_20] - 2 * deviation_20;

	/* returns on adj_close, from the trading day before */
	if (adj_close > 0 && previous_adj_close > 0)
	{
		out[OUT_RETURN_SIMPLE] = adj_close / previous_adj_close - 1;
		out[OUT_RETURN_LOG] = log(adj_close / previous_adj_close);
	}
	else
		out[OUT_RETURN_SIMPLE] = out[OUT_RETURN_LOG] = MISSING;

	/* annualised volatility: numpy's sample standard deviation (ddof 1) of the log returns
	 * (missing while one in the window is) times sqrt(252) */
	out[OUT_VOLATILITY_20] = sqrt(window_variance(state, state->return_log, 20, 1)) * sqrt(252.0);
	out[OUT_VOLATILITY_252] = sqrt(window_variance(state, state->return_log, 252, 1)) * sqrt(252.0);

	/* the 252-day extremes of the close */
	out[OUT_HIGH_252] = out[OUT_LOW_252] = MISSING;
	if (state->day_number >= LONGEST_WINDOW && state->days == LONGEST_WINDOW)
	{
		for (int back = 1; back < LONGEST_WINDOW; back++)
		{
			double		value = state->close[ring_slot(state, back)];

			high = value > high ? value : high;
			low = value < low ? value : low;
		}
		out[OUT_HIGH_252] = high;
		out[OUT_LOW_252] = low;
	}
}

static inline double
arg_or_missing(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? MISSING : PG_GETARG_FLOAT8(n);
}

/*
 * trading_days_step(state, kept_day_number, close, high, low, adj_close, resume_state)
 *
 * A stored day (kept_day_number given, before the first changed day) only enters the windows,
 * and its resume_state, when given, is the recursive state after it. A changed day is numbered
 * after the day before and gets every value.
 */
Datum
trading_days_step(PG_FUNCTION_ARGS)
{
	MemoryContext aggregate_context;
	TradingDaysState *state;
	double		close = arg_or_missing(fcinfo, 2);
	double		high = arg_or_missing(fcinfo, 3);
	double		low = arg_or_missing(fcinfo, 4);
	double		adj_close = arg_or_missing(fcinfo, 5);
	double		previous_close = MISSING;
	double		previous_adj_close = MISSING;
	int			slot;

	if (!AggCheckCallContext(fcinfo, &aggregate_context))
		elog(ERROR, "price_series.trading_days_step called in a non-aggregate context");
	if (!KNOWN(close))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("price_series.trading_days: a trading day needs a close (NaN and null are not closes)")));

	if (PG_ARGISNULL(0))
	{
		state = (TradingDaysState *) MemoryContextAllocZero(aggregate_context, sizeof(TradingDaysState));
		state->newest = LONGEST_WINDOW - 1;
		start_recursive(&state->recursive);
	}
	else
		state = (TradingDaysState *) PG_GETARG_POINTER(0);

	if (state->days > 0)
	{
		previous_close = state->close[state->newest];
		previous_adj_close = state->adj_close[state->newest];
	}

	/* the day enters the ring */
	slot = state->newest + 1 == LONGEST_WINDOW ? 0 : state->newest + 1;
	state->newest = slot;
	if (state->days < LONGEST_WINDOW)
		state->days++;
	state->close[slot] = close;
	state->adj_close[slot] = adj_close;
	state->return_log[slot] = adj_close > 0 && previous_adj_close > 0
		? log(adj_close / previous_adj_close) : MISSING;

	if (!PG_ARGISNULL(1))
	{
		int64		kept_day_number = PG_GETARG_INT64(1);

		/*
		 * Stored days from the symbol's first on are replayed: each computed again as in one
		 * pass (its result still null), so a symbol whose indicators have not all started (no
		 * complete resume_state) goes on from its stored days all the same.
		 */
		if (state->days == 1 && kept_day_number == 1)
			state->replaying = true;
		if (state->replaying)
		{
			if (kept_day_number != state->day_number + 1)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("price_series.trading_days: stored day %lld follows stored day %lld, replayed from day 1",
								(long long) kept_day_number, (long long) state->day_number)));
			state->day_number = kept_day_number;
			state->last_was_kept = true;
			state->resume_missing = false;
			step_windows(state, close, adj_close, previous_adj_close);
			step_recursive(state, close, high, low, adj_close, previous_close, previous_adj_close);
			PG_RETURN_POINTER(state);
		}
		/* a stored day */
		state->day_number = kept_day_number;
		state->last_was_kept = true;
		state->resume_missing = PG_ARGISNULL(6);
		if (!state->resume_missing)
			resume_from_state(state, PG_GETARG_ARRAYTYPE_P(6), close);
		PG_RETURN_POINTER(state);
	}
	if (state->last_was_kept && state->resume_missing)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("price_series.trading_days: a changed day follows a stored day without its resume_state"),
				 errhint("Pass the recursive state of the last stored day before the first changed one.")));

	state->day_number++;
	state->last_was_kept = false;
	state->out[OUT_TRADING_DAY_NUMBER] = (double) state->day_number;
	step_windows(state, close, adj_close, previous_adj_close);
	step_recursive(state, close, high, low, adj_close, previous_close, previous_adj_close);
	PG_RETURN_POINTER(state);
}

/* trading_days_final(state): the last day's price_series.trading_day, or null for a stored day. */
Datum
trading_days_final(PG_FUNCTION_ARGS)
{
	TradingDaysState *state;
	TupleDesc	descriptor = (TupleDesc) fcinfo->flinfo->fn_extra;
	Datum		values[OUTPUTS];
	bool		nulls[OUTPUTS];

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	state = (TradingDaysState *) PG_GETARG_POINTER(0);
	if (state->last_was_kept)
		PG_RETURN_NULL();

	if (descriptor == NULL)
	{
		MemoryContext old_context = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		if (get_call_result_type(fcinfo, NULL, &descriptor) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "price_series.trading_days_final must return a composite type");
		descriptor = BlessTupleDesc(CreateTupleDescCopy(descriptor));
		if (descriptor->natts != OUTPUTS)
			elog(ERROR, "price_series.trading_day has %d attributes, the library writes %d: reinstall the extension",
				 descriptor->natts, OUTPUTS);
		MemoryContextSwitchTo(old_context);
		fcinfo->flinfo->fn_extra = descriptor;
	}

	values[OUT_TRADING_DAY_NUMBER] = Int64GetDatum(state->day_number);
	nulls[OUT_TRADING_DAY_NUMBER] = false;
	for (int i = OUT_TRADING_DAY_NUMBER + 1; i < OUTPUTS; i++)
	{
		nulls[i] = !KNOWN(state->out[i]);
		values[i] = nulls[i] ? (Datum) 0 : Float8GetDatum(state->out[i]);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(descriptor, values, nulls)));
}
