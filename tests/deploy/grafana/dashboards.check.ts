// Each shipped dashboard, type-checked against @grafana/schema (see schema.ts):
//   1. generated/NAME.ts is the dashboard's JSON as a fresh object literal that
//      `satisfies CheckedDashboard` (excess properties, literal and enum values, the
//      panel plugins' options types, Prometheus targets, the datasource variable);
//   2. here it is also assigned to @grafana/schema's own Dashboard type (as JSON spells
//      enums), so the narrowing in schema.ts cannot have loosened anything;
//   3. and it is the JSON file that ships: the JSON module's type accepts it.
// tests/deploy/check_grafana.sh checks that every deploy/grafana/dashboards/*.json is
// imported here.
import type { DashboardJson } from './schema';

import overviewJson from '../../../deploy/grafana/dashboards/vmlab-overview.json';
import overview from './generated/vmlab-overview';
import controllerRuntimeJson from '../../../deploy/grafana/dashboards/controller-runtime.json';
import controllerRuntime from './generated/controller-runtime';

export const checked: DashboardJson[] = [overview, controllerRuntime];

export const overviewIsTheJson: typeof overviewJson = overview;
export const controllerRuntimeIsTheJson: typeof controllerRuntimeJson = controllerRuntime;
