"""Agent tools that are not registered actions: reads of Bastion's data, and safe fixes
(``spec.agent_tool``)."""
