// The model vmlab's dashboards are checked against: @grafana/schema's `Dashboard` (the
// classic dashboard JSON model that Grafana saves, exports and provisions from files),
// narrowed where that type leaves things open:
//   - a panel's `options` and `fieldConfig.defaults.custom` are `Record<string, unknown>`
//     there; here they are the panel plugin's own types from the same package (the
//     panelcfg of timeseries, stat, bargauge, table), chosen by the panel's `type`;
//   - `targets` are `Record<string, unknown>[]` there; here a non-empty list of Prometheus
//     queries (the package's DataQuery plus the Prometheus fields: `expr` required);
//   - every panel, row, target and query variable reads the `datasource` variable
//     ({type: "prometheus", uid: "${datasource}"}), and id, title and gridPos are required.
// Everything else is the package's type as it is (via Omit, so no field is added).
//
// The JSON file itself cannot be checked against these types directly: an imported JSON
// module's strings are widened to `string`, so every enum- or literal-typed field
// (`type: "row"`, color `mode`, variable `type`, ...) would be rejected, and a fresh
// object literal's excess-property check would not happen. generate.mjs therefore turns
// each dashboard into `const dashboard = <the JSON, verbatim> satisfies CheckedDashboard`.
// JsonOf<> maps the package's string enums to their string values (what JSON holds) and
// numeric enums to their numbers, and leaves everything else as it is.
import type {
  DataQuery,
  Dashboard,
  FieldConfig,
  FieldConfigSource,
  GridPos,
  Panel,
  RowPanel,
  VariableModel,
} from '@grafana/schema';
import type {
  FieldConfig as TimeSeriesFieldConfig,
  Options as TimeSeriesOptions,
} from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';
import type { Options as StatOptions } from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type { Options as BarGaugeOptions } from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen';
import type {
  FieldConfig as TableFieldConfig,
  Options as TableOptions,
} from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';

/** A type as JSON spells it: enum members become their values. */
export type JsonOf<T> = T extends string
  ? string extends T
    ? string
    : `${T}`
  : T extends number // not `number extends T`: plain number is assignable to numeric enums
    ? `${T}` extends `${infer N extends number}`
      ? number extends N
        ? number
        : N
      : never
    : T extends boolean | null | undefined
      ? T
      : T extends object
        ? { [K in keyof T]: JsonOf<T[K]> } // homomorphic: keeps `?`, arrays and tuples
        : T;

/** The one datasource every panel and query uses: the dashboard's `datasource` variable. */
export interface VariableDatasource {
  type: 'prometheus';
  uid: '${datasource}';
}

/**
 * A Prometheus query target: @grafana/schema's DataQuery (refId, hide, queryType, key) with
 * the fields of Grafana's Prometheus data source query (the package carries no type of it).
 */
export interface PrometheusQuery extends Omit<DataQuery, 'datasource'> {
  datasource: VariableDatasource;
  expr: string;
  legendFormat?: string;
  instant?: boolean;
  range?: boolean;
  format?: 'time_series' | 'table' | 'heatmap';
  editorMode?: 'code' | 'builder';
  interval?: string;
  intervalFactor?: number;
  exemplar?: boolean;
}

/** The package's FieldConfigSource with `defaults.custom` of the panel plugin's type C. */
export type PanelFieldConfigSource<C> = Omit<FieldConfigSource, 'defaults'> & {
  defaults: Omit<FieldConfig, 'custom'> & { custom?: C };
};

type PanelCommon = Omit<
  Panel,
  'type' | 'id' | 'title' | 'gridPos' | 'datasource' | 'options' | 'fieldConfig' | 'targets'
> & {
  id: number;
  title: string;
  gridPos: GridPos;
  datasource: VariableDatasource;
  targets: [PrometheusQuery, ...PrometheusQuery[]];
};

/** A panel of plugin `T` with options O and field config `custom` C (never: none). */
export type TypedPanel<T extends string, O, C> = PanelCommon & {
  type: T;
  options: O;
  fieldConfig: PanelFieldConfigSource<C>;
};

export type VmlabPanel =
  | TypedPanel<'timeseries', TimeSeriesOptions, TimeSeriesFieldConfig>
  | TypedPanel<'stat', StatOptions, never>
  | TypedPanel<'bargauge', BarGaugeOptions, never>
  | TypedPanel<'table', TableOptions, TableFieldConfig>;

export type VmlabRow = Omit<RowPanel, 'datasource' | 'gridPos' | 'panels' | 'title'> & {
  datasource: VariableDatasource;
  gridPos: GridPos;
  title: string;
  panels: VmlabPanel[];
};

export type VmlabVariable =
  | (Omit<VariableModel, 'type' | 'datasource' | 'query'> & {
      type: 'datasource';
      query: 'prometheus';
    })
  | (Omit<VariableModel, 'type' | 'datasource' | 'query'> & {
      type: 'query';
      datasource: VariableDatasource;
      query: string;
    });

export type VmlabDashboard = Omit<Dashboard, 'uid' | 'title' | 'panels' | 'templating'> & {
  uid: string;
  title: string;
  panels: Array<VmlabPanel | VmlabRow>;
  templating: { list: VmlabVariable[] };
};

/** What generate.mjs checks each dashboard's JSON against (with `satisfies`). */
export type CheckedDashboard = JsonOf<VmlabDashboard>;

/** @grafana/schema's Dashboard itself, as JSON spells it (no narrowing at all). */
export type DashboardJson = JsonOf<Dashboard>;
