-- List pages walk an app table in id order within one portal (`WHERE portal_id = ? AND id > ?
-- ORDER BY id LIMIT ?`). Without these indexes the planner reads the portal's rows through
-- (portal_id, updated_at) and sorts all of them for every page.
CREATE INDEX contacts_portal_order ON contacts (portal_id, id);
CREATE INDEX companies_portal_order ON companies (portal_id, id);
CREATE INDEX deals_portal_order ON deals (portal_id, id);
