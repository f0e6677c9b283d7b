DROP VIEW user_with_linked_accounts;
