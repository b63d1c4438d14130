// The scenario's arithmetic in the browser: issue grids, utilities (DESIGN §3), names, words.

/** Tie tolerance of DESIGN §3: a vote is yes only when U + t > r + TIE_EPSILON. */
export const TIE_EPSILON = 1e-9;

/** A number from the scenario: a JSON number or exact-fraction text such as "1/3". */
export function num(value) {
  if (typeof value === "number") return value;
  if (typeof value === "string") {
    const parts = value.split("/");
    if (parts.length === 2) return Number(parts[0]) / Number(parts[1]);
    return Number(value);
  }
  return NaN;
}

/** Round away float noise and print without trailing zeros: 2.5, 4, 0.33. */
export function fmt(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const rounded = Number(Number(value).toFixed(digits));
  return Object.is(rounded, -0) ? "0" : String(rounded);
}

/** An issue's grid: min, max, step as numbers, and the number of levels. */
export function grid(issue) {
  const min = num(issue.min);
  const max = num(issue.max);
  const step = num(issue.step) || 1;
  const levels = Math.round((max - min) / step) + 1;
  return { min, max, step, levels };
}

/** The grid value at index k, rounded like the engine (no float noise in what we send). */
export function valueAt(issue, k) {
  const g = grid(issue);
  const index = Math.max(0, Math.min(g.levels - 1, Math.round(k)));
  const value = g.min + index * g.step;
  return Number(value.toFixed(10));
}

/** The grid index nearest to `value`. */
export function indexOf(issue, value) {
  const g = grid(issue);
  return Math.max(0, Math.min(g.levels - 1, Math.round((num(value) - g.min) / g.step)));
}

/** Snap `value` onto the issue's grid. */
export function snap(issue, value) {
  return valueAt(issue, indexOf(issue, value));
}

/** Values as an array in issue order, from a dict {issue key: value} or an array. */
export function valuesList(scenario, values) {
  if (Array.isArray(values)) return values.map(Number);
  return scenario.issues.map((issue) => Number(values[issue.key]));
}

/** Values as a dict {issue key: value}, from an array or a dict. */
export function valuesDict(scenario, values) {
  if (!Array.isArray(values)) return { ...values };
  const out = {};
  scenario.issues.forEach((issue, j) => {
    out[issue.key] = values[j];
  });
  return out;
}

/**
 * A member's utility at `values` (dict or list), exactly as DESIGN §3:
 * cityblock 100 * (1 - sum s_j |x_j - p_j| / R_j / sum s_j);
 * euclidean 100 * (1 - sqrt(sum s_j ((x_j - p_j) / R_j)^2 / sum s_j)).
 * `member` needs `ideal` and `salience` dicts; returns null when they are unknown.
 */
export function utility(scenario, member, values) {
  if (!member || !member.ideal || !member.salience) return null;
  const point = valuesList(scenario, values);
  let total = 0;
  let distance = 0;
  scenario.issues.forEach((issue, j) => {
    const g = grid(issue);
    const range = g.max - g.min;
    const s = num(member.salience[issue.key] ?? 1);
    const p = num(member.ideal[issue.key]);
    const x = point[j];
    total += s;
    if (scenario.utility === "euclidean") {
      const scaled = (x - p) / range;
      distance += s * (scaled * scaled);
    } else {
      distance += (s * Math.abs(x - p)) / range;
    }
  });
  if (scenario.utility === "euclidean") return 100 * (1 - Math.sqrt(distance / total));
  return 100 * (1 - distance / total);
}

/** Whether utility `u` plus transfer `t` beats reservation `r` (a tie is a no). */
export function beats(u, r, t = 0) {
  if (u === null || u === undefined || r === null || r === undefined) return null;
  return u + t > num(r) + TIE_EPSILON;
}

/** Every member of the scenario by key: {key, name, title, role, country, countryName, ...}. */
export function members(scenario) {
  const out = new Map();
  for (const country of scenario.countries || []) {
    const chief = country.chief;
    out.set(chief.key, {
      ...chief,
      role: "chief",
      country: country.key,
      countryName: country.name,
    });
    for (const member of country.constituents || []) {
      out.set(member.key, {
        ...member,
        role: "constituent",
        country: country.key,
        countryName: country.name,
      });
    }
  }
  return out;
}

export function countryOf(scenario, key) {
  return (scenario.countries || []).find((c) => c.key === key) || null;
}

/** "Atlantis tariff cut 5, Borduria tariff cut 6" (units left out to stay short). */
export function describeValues(scenario, values) {
  const dict = valuesDict(scenario, values);
  return scenario.issues.map((issue) => `${issue.label} ${fmt(dict[issue.key])}`).join(", ");
}

/** The ratification rule in words, e.g. "more than 1/2 of the weighted votes". */
export function ruleText(country) {
  const rule = country.ratification || {};
  const strict = rule.strict !== false;
  const quota = rule.quota === "1" || rule.quota === 1 ? "all" : String(rule.quota ?? "1/2");
  const vetoes = (country.constituents || []).filter((m) => m.veto).map((m) => m.name);
  let text = `${strict ? "more than" : "at least"} ${quota} of the weighted votes`;
  if (vetoes.length) text += `, and every veto player (${vetoes.join(", ")}) votes yes`;
  return text;
}

export const PHASES = {
  lobby: "Waiting to start",
  level1: "Level I · negotiation",
  level2: "Level II · ratification vote",
  compliance: "Compliance",
  ended: "Game over",
};

export const ROUND_RESULTS = {
  agreement: "agreement in force",
  no_agreement: "no agreement",
  involuntary_defection: "involuntary defection (ratification failed)",
  voluntary_defection: "voluntary defection (an agreement was broken)",
};

/** "4:05", "1:02:03"; negative becomes 0:00. */
export function clock(seconds) {
  const total = Math.max(0, Math.ceil(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}
