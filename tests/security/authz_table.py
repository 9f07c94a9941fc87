"""Who may call what: the one table of expected outcomes of the authorization matrix.

Columns are the roles: anonymous; staff (a staff account with no permission); ro (read-only
solver); rw (read-write solver not assigned to the dispute); asgnd (the read-write solver
assigned to the dispute); oper (operator group, not superuser); super (superuser, also in the
operator group, like the login `make run` prints). An outcome is the HTTP status, `login` for a
redirect to the admin login page, and a trailing `+` when the request changes the database
(an allowed write). Every other cell, refusals and reads alike, must change nothing.

Reading the admin rows: Django answers 302 to a POSTed action the user may not run ("no action
selected") and to a change page of an object the user may not see (back to the index); the
`+` tells the run from the refusal.
"""

from tests.security.endpoints import Endpoint, model_app, model_key_of

ROLES = ("anon", "staff", "ro", "rw", "assigned", "operator", "superuser")

TABLE_TEXT = """
# --- admin site --------------------------------------------------------------------------------------------------
#      endpoint                                                               anon  staff ro    rw    asgnd oper  super
GET    admin/(?P<url>.*)$                                                     login 404   404   404   404   404   404
POST   admin/(?P<url>.*)$                                                     login 404   404   404   404   404   404
GET    admin/auth/group/<path:object_id>/                                     login 302   302   302   302   302   302
POST   admin/auth/group/<path:object_id>/                                     login 302   302   302   302   302   302
GET    admin/auth/user/<path:object_id>/                                      login 302   302   302   302   302   302
POST   admin/auth/user/<path:object_id>/                                      login 302   302   302   302   302   302
GET    admin/axes/accessattempt/<path:object_id>/                             login 302   302   302   302   302   302
POST   admin/axes/accessattempt/<path:object_id>/                             login 302   302   302   302   302   302
GET    admin/axes/accessfailurelog/<path:object_id>/                          login 302   302   302   302   302   302
POST   admin/axes/accessfailurelog/<path:object_id>/                          login 302   302   302   302   302   302
GET    admin/axes/accesslog/<path:object_id>/                                 login 302   302   302   302   302   302
POST   admin/axes/accesslog/<path:object_id>/                                 login 302   302   302   302   302   302
GET    admin/devfee/devfeepayment/<path:object_id>/                           login 302   302   302   302   302   302
POST   admin/devfee/devfeepayment/<path:object_id>/                           login 302   302   302   302   302   302
GET    admin/disputes/dispute/<path:object_id>/                               login 302   302   302   302   302   302
POST   admin/disputes/dispute/<path:object_id>/                               login 302   302   302   302   302   302
GET    admin/disputes/solverlink/<path:object_id>/                            login 302   302   302   302   302   302
POST   admin/disputes/solverlink/<path:object_id>/                            login 302   302   302   302   302   302
GET    admin/django_q/failure/<path:object_id>/                               login 302   302   302   302   302   302
POST   admin/django_q/failure/<path:object_id>/                               login 302   302   302   302   302   302
GET    admin/django_q/ormq/<path:object_id>/                                  login 302   302   302   302   302   302
POST   admin/django_q/ormq/<path:object_id>/                                  login 302   302   302   302   302   302
GET    admin/django_q/schedule/<path:object_id>/                              login 302   302   302   302   302   302
POST   admin/django_q/schedule/<path:object_id>/                              login 302   302   302   302   302   302
GET    admin/django_q/success/<path:object_id>/                               login 302   302   302   302   302   302
POST   admin/django_q/success/<path:object_id>/                               login 302   302   302   302   302   302
GET    admin/mostro_site/apitoken/<path:object_id>/                           login 302   302   302   302   302   302
POST   admin/mostro_site/apitoken/<path:object_id>/                           login 302   302   302   302   302   302
GET    admin/mostro_site/nodesettings/<path:object_id>/                       login 302   302   302   302   302   302
POST   admin/mostro_site/nodesettings/<path:object_id>/                       login 302   302   302   302   302   302
GET    admin/mostro_site/settingsauditentry/<path:object_id>/                 login 302   302   302   302   302   302
POST   admin/mostro_site/settingsauditentry/<path:object_id>/                 login 302   302   302   302   302   302
GET    admin/nostrbridge/addressableclock/<path:object_id>/                   login 302   302   302   302   302   302
POST   admin/nostrbridge/addressableclock/<path:object_id>/                   login 302   302   302   302   302   302
GET    admin/nostrbridge/inboundevent/<path:object_id>/                       login 302   302   302   302   302   302
POST   admin/nostrbridge/inboundevent/<path:object_id>/                       login 302   302   302   302   302   302
GET    admin/nostrbridge/outboundmessage/<path:object_id>/                    login 302   302   302   302   302   302
POST   admin/nostrbridge/outboundmessage/<path:object_id>/                    login 302   302   302   302   302   302
GET    admin/nostrbridge/relayhealth/<path:object_id>/                        login 302   302   302   302   302   302
POST   admin/nostrbridge/relayhealth/<path:object_id>/                        login 302   302   302   302   302   302
GET    admin/orders/bond/<path:object_id>/                                    login 302   302   302   302   302   302
POST   admin/orders/bond/<path:object_id>/                                    login 302   302   302   302   302   302
GET    admin/orders/ban/<path:object_id>/                                     login 302   302   302   302   302   302
POST   admin/orders/ban/<path:object_id>/                                     login 302   302   302   302   302   302
GET    admin/orders/order/<path:object_id>/                                   login 302   302   302   302   302   302
POST   admin/orders/order/<path:object_id>/                                   login 302   302   302   302   302   302
GET    admin/orders/orderstatuschange/<path:object_id>/                       login 302   302   302   302   302   302
POST   admin/orders/orderstatuschange/<path:object_id>/                       login 302   302   302   302   302   302
GET    admin/orders/trader/<path:object_id>/                                  login 302   302   302   302   302   302
POST   admin/orders/trader/<path:object_id>/                                  login 302   302   302   302   302   302
GET    admin:app_list[auth]                                                   login 404   404   404   404   404   200
POST   admin:app_list[auth]                                                   login 404   404   404   404   404   200
GET    admin:app_list[axes]                                                   login 404   404   404   404   404   200
POST   admin:app_list[axes]                                                   login 404   404   404   404   404   200
GET    admin:app_list[devfee]                                                 login 404   404   404   404   200   200
POST   admin:app_list[devfee]                                                 login 404   404   404   404   200   200
GET    admin:app_list[disputes]                                               login 404   200   200   200   200   200
POST   admin:app_list[disputes]                                               login 404   200   200   200   200   200
GET    admin:app_list[django_q]                                               login 404   404   404   404   404   200
POST   admin:app_list[django_q]                                               login 404   404   404   404   404   200
GET    admin:app_list[mostro_site]                                            login 404   200   200   200   200   200
POST   admin:app_list[mostro_site]                                            login 404   200   200   200   200   200
GET    admin:app_list[nostrbridge]                                            login 404   404   404   404   200   200
POST   admin:app_list[nostrbridge]                                            login 404   404   404   404   200   200
GET    admin:app_list[orders]                                                 login 404   200   200   200   200   200
POST   admin:app_list[orders]                                                 login 404   200   200   200   200   200
GET    admin:autocomplete                                                     login 403   403   403   403   403   200
POST   admin:autocomplete                                                     login 405   405   405   405   405   405
GET    admin:index                                                            login 200   200   200   200   200   200
POST   admin:index                                                            login 200   200   200   200   200   200
GET    admin:jsi18n                                                           login 200   200   200   200   200   200
POST   admin:jsi18n                                                           login 405   405   405   405   405   405
GET    admin:login                                                            200   302   302   302   302   302   302
POST   admin:login                                                            200   200   200   200   200   200   200
GET    admin:logout                                                           302   405   405   405   405   405   405
POST   admin:logout                                                           302   200   200   200   200   200   200
GET    admin:password_change                                                  login 200   200   200   200   200   200
POST   admin:password_change                                                  login 302+  302+  302+  302+  302+  302+
GET    admin:password_change_done                                             login 200   200   200   200   200   200
POST   admin:password_change_done                                             login 405   405   405   405   405   405
GET    admin:view_on_site                                                     login 404   404   404   404   404   404
POST   admin:view_on_site                                                     login 404   404   404   404   404   404

# --- site pages --------------------------------------------------------------------------------------------------
#      endpoint                                                               anon  staff ro    rw    asgnd oper  super
GET    favicon                                                                302   302   302   302   302   302   302
POST   favicon                                                                302   302   302   302   302   302   302
GET    landing                                                                200   200   200   200   200   200   200
POST   landing                                                                200   200   200   200   200   200   200

# --- admin auth --------------------------------------------------------------------------------------------------
#      endpoint                                                               anon  staff ro    rw    asgnd oper  super
GET    admin:auth_group_add                                                   login 403   403   403   403   403   200
POST   admin:auth_group_add                                                   login 403   403   403   403   403   302+
GET    admin:auth_group_change                                                login 403   403   403   403   403   200
POST   admin:auth_group_change                                                login 403   403   403   403   403   302+
GET    admin:auth_group_changelist                                            login 403   403   403   403   403   200
POST   admin:auth_group_changelist                                            login 403   403   403   403   403   200
POST   admin:auth_group_changelist?action=delete_selected                     login 403   403   403   403   403   302+
GET    admin:auth_group_delete                                                login 403   403   403   403   403   200
POST   admin:auth_group_delete                                                login 403   403   403   403   403   302+
GET    admin:auth_group_history                                               login 403   403   403   403   403   200
POST   admin:auth_group_history                                               login 403   403   403   403   403   200
GET    admin:auth_user_add                                                    login 403   403   403   403   403   200
POST   admin:auth_user_add                                                    login 403   403   403   403   403   302+
GET    admin:auth_user_change                                                 login 403   403   403   403   403   200
POST   admin:auth_user_change                                                 login 403   403   403   403   403   302+
GET    admin:auth_user_changelist                                             login 403   403   403   403   403   200
POST   admin:auth_user_changelist                                             login 403   403   403   403   403   200
POST   admin:auth_user_changelist?action=delete_selected                      login 403   403   403   403   403   302+
GET    admin:auth_user_delete                                                 login 403   403   403   403   403   200
POST   admin:auth_user_delete                                                 login 403   403   403   403   403   302+
GET    admin:auth_user_history                                                login 403   403   403   403   403   200
POST   admin:auth_user_history                                                login 403   403   403   403   403   200
GET    admin:auth_user_password_change                                        login 403   403   403   403   403   200
POST   admin:auth_user_password_change                                        login 403   403   403   403   403   302+

# --- admin axes --------------------------------------------------------------------------------------------------
#      endpoint                                                               anon  staff ro    rw    asgnd oper  super
GET    admin:axes_accessattempt_add                                           login 403   403   403   403   403   403
POST   admin:axes_accessattempt_add                                           login 403   403   403   403   403   403
GET    admin:axes_accessattempt_change                                        login 403   403   403   403   403   200
POST   admin:axes_accessattempt_change                                        login 403   403   403   403   403   403
GET    admin:axes_accessattempt_changelist                                    login 403   403   403   403   403   200
POST   admin:axes_accessattempt_changelist                                    login 403   403   403   403   403   200
POST   admin:axes_accessattempt_changelist?action=delete_selected             login 403   403   403   403   403   302+
GET    admin:axes_accessattempt_delete                                        login 403   403   403   403   403   200
POST   admin:axes_accessattempt_delete                                        login 403   403   403   403   403   302+
GET    admin:axes_accessattempt_history                                       login 403   403   403   403   403   200
POST   admin:axes_accessattempt_history                                       login 403   403   403   403   403   200
GET    admin:axes_accessfailurelog_add                                        login 403   403   403   403   403   403
POST   admin:axes_accessfailurelog_add                                        login 403   403   403   403   403   403
GET    admin:axes_accessfailurelog_change                                     login 403   403   403   403   403   200
POST   admin:axes_accessfailurelog_change                                     login 403   403   403   403   403   403
GET    admin:axes_accessfailurelog_changelist                                 login 403   403   403   403   403   200
POST   admin:axes_accessfailurelog_changelist                                 login 403   403   403   403   403   200
POST   admin:axes_accessfailurelog_changelist?action=delete_selected          login 403   403   403   403   403   200
GET    admin:axes_accessfailurelog_delete                                     login 403   403   403   403   403   403
POST   admin:axes_accessfailurelog_delete                                     login 403   403   403   403   403   403
GET    admin:axes_accessfailurelog_history                                    login 403   403   403   403   403   200
POST   admin:axes_accessfailurelog_history                                    login 403   403   403   403   403   200
GET    admin:axes_accesslog_add                                               login 403   403   403   403   403   403
POST   admin:axes_accesslog_add                                               login 403   403   403   403   403   403
GET    admin:axes_accesslog_change                                            login 403   403   403   403   403   200
POST   admin:axes_accesslog_change                                            login 403   403   403   403   403   403
GET    admin:axes_accesslog_changelist                                        login 403   403   403   403   403   200
POST   admin:axes_accesslog_changelist                                        login 403   403   403   403   403   200
POST   admin:axes_accesslog_changelist?action=delete_selected                 login 403   403   403   403   403   200
GET    admin:axes_accesslog_delete                                            login 403   403   403   403   403   403
POST   admin:axes_accesslog_delete                                            login 403   403   403   403   403   403
GET    admin:axes_accesslog_history                                           login 403   403   403   403   403   200
POST   admin:axes_accesslog_history                                           login 403   403   403   403   403   200

# --- admin devfee ------------------------------------------------------------------------------------------------
#      endpoint                                                               anon  staff ro    rw    asgnd oper  super
GET    admin:devfee_devfeepayment_add                                         login 403   403   403   403   403   403
POST   admin:devfee_devfeepayment_add                                         login 403   403   403   403   403   403
GET    admin:devfee_devfeepayment_change                                      login 403   403   403   403   200   200
POST   admin:devfee_devfeepayment_change                                      login 403   403   403   403   403   403
GET    admin:devfee_devfeepayment_changelist                                  login 403   403   403   403   200   200
POST   admin:devfee_devfeepayment_changelist                                  login 403   403   403   403   200   200
POST   admin:devfee_devfeepayment_changelist?action=delete_selected           login 403   403   403   403   200   200
GET    admin:devfee_devfeepayment_delete                                      login 403   403   403   403   403   403
POST   admin:devfee_devfeepayment_delete                                      login 403   403   403   403   403   403
GET    admin:devfee_devfeepayment_history                                     login 403   403   403   403   200   200
POST   admin:devfee_devfeepayment_history                                     login 403   403   403   403   200   200

# --- admin disputes ----------------------------------------------------------------------------------------------
#      endpoint                                                               anon  staff ro    rw    asgnd oper  super
GET    admin:disputes_dispute_add                                             login 403   403   403   403   403   403
POST   admin:disputes_dispute_add                                             login 403   403   403   403   403   403
GET    admin:disputes_dispute_change                                          login 403   200   200   200   200   200
POST   admin:disputes_dispute_change                                          login 403   200   200   200   200   200
GET    admin:disputes_dispute_changelist                                      login 403   200   200   200   200   200
POST   admin:disputes_dispute_changelist                                      login 403   200   200   200   200   200
POST   admin:disputes_dispute_changelist?action=delete_selected               login 403   302   302   302   302   302
POST   admin:disputes_dispute_changelist?action=refund_selected               login 403   302   302   302+  302   302
POST   admin:disputes_dispute_changelist?action=settle_selected               login 403   302   302   302+  302   302
POST   admin:disputes_dispute_changelist?action=take_selected                 login 403   302   302   302+  302+  302+
GET    admin:disputes_dispute_chat                                            login 403   403   403   200   200   200
POST   admin:disputes_dispute_chat                                            login 403   403   403   200   200   200
GET    admin:disputes_dispute_chat_attachment                                 login 403   403   403   404   404   404
POST   admin:disputes_dispute_chat_attachment                                 login 403   403   403   404   404   404
GET    admin:disputes_dispute_ban                                             login 405   405   405   405   405   405
POST   admin:disputes_dispute_ban                                             login 403   403   302+  302+  302+  302+
GET    admin:disputes_dispute_chat_send                                       login 405   405   405   405   405   405
POST   admin:disputes_dispute_chat_send                                       login 403   403   403   201+  403   403
GET    admin:disputes_dispute_delete                                          login 403   403   403   403   403   403
POST   admin:disputes_dispute_delete                                          login 403   403   403   403   403   403
GET    admin:disputes_dispute_history                                         login 403   200   200   200   200   200
POST   admin:disputes_dispute_history                                         login 403   200   200   200   200   200
GET    admin:disputes_dispute_refund                                          login 403   403   200   200   200   200
POST   admin:disputes_dispute_refund                                          login 403   403   302   302+  302   302
GET    admin:disputes_dispute_settle                                          login 403   403   200   200   200   200
POST   admin:disputes_dispute_settle                                          login 403   403   302   302+  302   302
GET    admin:disputes_dispute_take                                            login 403   200   200   200   200   200
POST   admin:disputes_dispute_take                                            login 403   302   302   302+  302+  302+
GET    admin:disputes_solverlink_add                                          login 403   403   403   403   200   200
POST   admin:disputes_solverlink_add                                          login 403   403   403   403   302+  302+
GET    admin:disputes_solverlink_change                                       login 403   403   403   403   200   200
POST   admin:disputes_solverlink_change                                       login 403   403   403   403   302+  302+
GET    admin:disputes_solverlink_changelist                                   login 403   403   403   403   200   200
POST   admin:disputes_solverlink_changelist                                   login 403   403   403   403   200   200
POST   admin:disputes_solverlink_changelist?action=delete_selected            login 403   403   403   403   302+  302+
POST   admin:disputes_solverlink_changelist?action=withdraw_solver_role       login 403   403   403   403   302+  302+
GET    admin:disputes_solverlink_delete                                       login 403   403   403   403   200   200
POST   admin:disputes_solverlink_delete                                       login 403   403   403   403   302+  302+
GET    admin:disputes_solverlink_history                                      login 403   403   403   403   200   200
POST   admin:disputes_solverlink_history                                      login 403   403   403   403   200   200

# --- admin django_q ----------------------------------------------------------------------------------------------
#      endpoint                                                               anon  staff ro    rw    asgnd oper  super
GET    admin:django_q_failure_add                                             login 403   403   403   403   403   403
POST   admin:django_q_failure_add                                             login 403   403   403   403   403   403
GET    admin:django_q_failure_change                                          login 403   403   403   403   403   200
POST   admin:django_q_failure_change                                          login 403   403   403   403   403   403
GET    admin:django_q_failure_changelist                                      login 403   403   403   403   403   200
POST   admin:django_q_failure_changelist                                      login 403   403   403   403   403   200
POST   admin:django_q_failure_changelist?action=delete_selected               login 403   403   403   403   403   200
GET    admin:django_q_failure_delete                                          login 403   403   403   403   403   403
POST   admin:django_q_failure_delete                                          login 403   403   403   403   403   403
GET    admin:django_q_failure_history                                         login 403   403   403   403   403   200
POST   admin:django_q_failure_history                                         login 403   403   403   403   403   200
GET    admin:django_q_ormq_add                                                login 403   403   403   403   403   403
POST   admin:django_q_ormq_add                                                login 403   403   403   403   403   403
GET    admin:django_q_ormq_change                                             login 403   403   403   403   403   200
POST   admin:django_q_ormq_change                                             login 403   403   403   403   403   403
GET    admin:django_q_ormq_changelist                                         login 403   403   403   403   403   200
POST   admin:django_q_ormq_changelist                                         login 403   403   403   403   403   200
POST   admin:django_q_ormq_changelist?action=delete_selected                  login 403   403   403   403   403   200
GET    admin:django_q_ormq_delete                                             login 403   403   403   403   403   403
POST   admin:django_q_ormq_delete                                             login 403   403   403   403   403   403
GET    admin:django_q_ormq_history                                            login 403   403   403   403   403   200
POST   admin:django_q_ormq_history                                            login 403   403   403   403   403   200
GET    admin:django_q_schedule_add                                            login 403   403   403   403   403   403
POST   admin:django_q_schedule_add                                            login 403   403   403   403   403   403
GET    admin:django_q_schedule_change                                         login 403   403   403   403   403   200
POST   admin:django_q_schedule_change                                         login 403   403   403   403   403   403
GET    admin:django_q_schedule_changelist                                     login 403   403   403   403   403   200
POST   admin:django_q_schedule_changelist                                     login 403   403   403   403   403   200
POST   admin:django_q_schedule_changelist?action=delete_selected              login 403   403   403   403   403   200
GET    admin:django_q_schedule_delete                                         login 403   403   403   403   403   403
POST   admin:django_q_schedule_delete                                         login 403   403   403   403   403   403
GET    admin:django_q_schedule_history                                        login 403   403   403   403   403   200
POST   admin:django_q_schedule_history                                        login 403   403   403   403   403   200
GET    admin:django_q_success_add                                             login 403   403   403   403   403   403
POST   admin:django_q_success_add                                             login 403   403   403   403   403   403
GET    admin:django_q_success_change                                          login 403   403   403   403   403   200
POST   admin:django_q_success_change                                          login 403   403   403   403   403   403
GET    admin:django_q_success_changelist                                      login 403   403   403   403   403   200
POST   admin:django_q_success_changelist                                      login 403   403   403   403   403   200
POST   admin:django_q_success_changelist?action=delete_selected               login 403   403   403   403   403   200
GET    admin:django_q_success_delete                                          login 403   403   403   403   403   403
POST   admin:django_q_success_delete                                          login 403   403   403   403   403   403
GET    admin:django_q_success_history                                         login 403   403   403   403   403   200
POST   admin:django_q_success_history                                         login 403   403   403   403   403   200

# --- admin mostro_site -------------------------------------------------------------------------------------------
#      endpoint                                                               anon  staff ro    rw    asgnd oper  super
GET    admin:mostro_site_apitoken_add                                         login 403   200   200   200   200   200
POST   admin:mostro_site_apitoken_add                                         login 403   302+  302+  302+  302+  302+
GET    admin:mostro_site_apitoken_change                                      login 403   302   302   302   200   200
POST   admin:mostro_site_apitoken_change                                      login 403   403   403   403   403   403
GET    admin:mostro_site_apitoken_changelist                                  login 403   200   200   200   200   200
POST   admin:mostro_site_apitoken_changelist                                  login 403   200   200   200   200   200
POST   admin:mostro_site_apitoken_changelist?action=delete_selected           login 403   302   302   302   302   302
POST   admin:mostro_site_apitoken_changelist?action=revoke_selected           login 403   302   302   302   302+  302+
GET    admin:mostro_site_apitoken_delete                                      login 403   403   403   403   403   403
POST   admin:mostro_site_apitoken_delete                                      login 403   403   403   403   403   403
GET    admin:mostro_site_apitoken_history                                     login 302   302   302   302   200   200
POST   admin:mostro_site_apitoken_history                                     login 302   302   302   302   200   200
GET    admin:mostro_site_nodesettings_add                                     login 403   403   403   403   403   403
POST   admin:mostro_site_nodesettings_add                                     login 403   403   403   403   403   403
GET    admin:mostro_site_nodesettings_change                                  login 403   403   403   403   200   200
POST   admin:mostro_site_nodesettings_change                                  login 403   403   403   403   403   403
GET    admin:mostro_site_nodesettings_changelist                              login 403   403   403   403   200   200
POST   admin:mostro_site_nodesettings_changelist                              login 403   403   403   403   200   200
POST   admin:mostro_site_nodesettings_changelist?action=delete_selected       login 403   403   403   403   200   200
GET    admin:mostro_site_nodesettings_delete                                  login 403   403   403   403   403   403
POST   admin:mostro_site_nodesettings_delete                                  login 403   403   403   403   403   403
GET    admin:mostro_site_nodesettings_history                                 login 403   403   403   403   200   200
POST   admin:mostro_site_nodesettings_history                                 login 403   403   403   403   200   200
GET    admin:mostro_site_settingsauditentry_add                               login 403   403   403   403   403   403
POST   admin:mostro_site_settingsauditentry_add                               login 403   403   403   403   403   403
GET    admin:mostro_site_settingsauditentry_change                            login 403   403   403   403   200   200
POST   admin:mostro_site_settingsauditentry_change                            login 403   403   403   403   403   403
GET    admin:mostro_site_settingsauditentry_changelist                        login 403   403   403   403   200   200
POST   admin:mostro_site_settingsauditentry_changelist                        login 403   403   403   403   200   200
POST   admin:mostro_site_settingsauditentry_changelist?action=delete_selected login 403   403   403   403   200   200
GET    admin:mostro_site_settingsauditentry_delete                            login 403   403   403   403   403   403
POST   admin:mostro_site_settingsauditentry_delete                            login 403   403   403   403   403   403
GET    admin:mostro_site_settingsauditentry_history                           login 403   403   403   403   200   200
POST   admin:mostro_site_settingsauditentry_history                           login 403   403   403   403   200   200

# --- admin nostrbridge -------------------------------------------------------------------------------------------
#      endpoint                                                               anon  staff ro    rw    asgnd oper  super
GET    admin:nostrbridge_addressableclock_add                                 login 403   403   403   403   403   403
POST   admin:nostrbridge_addressableclock_add                                 login 403   403   403   403   403   403
GET    admin:nostrbridge_addressableclock_change                              login 403   403   403   403   403   200
POST   admin:nostrbridge_addressableclock_change                              login 403   403   403   403   403   403
GET    admin:nostrbridge_addressableclock_changelist                          login 403   403   403   403   403   200
POST   admin:nostrbridge_addressableclock_changelist                          login 403   403   403   403   403   200
POST   admin:nostrbridge_addressableclock_changelist?action=delete_selected   login 403   403   403   403   403   200
GET    admin:nostrbridge_addressableclock_delete                              login 403   403   403   403   403   403
POST   admin:nostrbridge_addressableclock_delete                              login 403   403   403   403   403   403
GET    admin:nostrbridge_addressableclock_history                             login 403   403   403   403   403   200
POST   admin:nostrbridge_addressableclock_history                             login 403   403   403   403   403   200
GET    admin:nostrbridge_inboundevent_add                                     login 403   403   403   403   403   403
POST   admin:nostrbridge_inboundevent_add                                     login 403   403   403   403   403   403
GET    admin:nostrbridge_inboundevent_change                                  login 403   403   403   403   200   200
POST   admin:nostrbridge_inboundevent_change                                  login 403   403   403   403   403   403
GET    admin:nostrbridge_inboundevent_changelist                              login 403   403   403   403   200   200
POST   admin:nostrbridge_inboundevent_changelist                              login 403   403   403   403   200   200
POST   admin:nostrbridge_inboundevent_changelist?action=delete_selected       login 403   403   403   403   302   302
POST   admin:nostrbridge_inboundevent_changelist?action=requeue               login 403   403   403   403   302+  302+
GET    admin:nostrbridge_inboundevent_delete                                  login 403   403   403   403   403   403
POST   admin:nostrbridge_inboundevent_delete                                  login 403   403   403   403   403   403
GET    admin:nostrbridge_inboundevent_history                                 login 403   403   403   403   200   200
POST   admin:nostrbridge_inboundevent_history                                 login 403   403   403   403   200   200
GET    admin:nostrbridge_outboundmessage_add                                  login 403   403   403   403   403   403
POST   admin:nostrbridge_outboundmessage_add                                  login 403   403   403   403   403   403
GET    admin:nostrbridge_outboundmessage_change                               login 403   403   403   403   200   200
POST   admin:nostrbridge_outboundmessage_change                               login 403   403   403   403   403   403
GET    admin:nostrbridge_outboundmessage_changelist                           login 403   403   403   403   200   200
POST   admin:nostrbridge_outboundmessage_changelist                           login 403   403   403   403   200   200
POST   admin:nostrbridge_outboundmessage_changelist?action=delete_selected    login 403   403   403   403   200   200
GET    admin:nostrbridge_outboundmessage_delete                               login 403   403   403   403   403   403
POST   admin:nostrbridge_outboundmessage_delete                               login 403   403   403   403   403   403
GET    admin:nostrbridge_outboundmessage_history                              login 403   403   403   403   200   200
POST   admin:nostrbridge_outboundmessage_history                              login 403   403   403   403   200   200
GET    admin:nostrbridge_relayhealth_add                                      login 403   403   403   403   403   403
POST   admin:nostrbridge_relayhealth_add                                      login 403   403   403   403   403   403
GET    admin:nostrbridge_relayhealth_change                                   login 403   403   403   403   200   200
POST   admin:nostrbridge_relayhealth_change                                   login 403   403   403   403   403   403
GET    admin:nostrbridge_relayhealth_changelist                               login 403   403   403   403   200   200
POST   admin:nostrbridge_relayhealth_changelist                               login 403   403   403   403   200   200
POST   admin:nostrbridge_relayhealth_changelist?action=delete_selected        login 403   403   403   403   200   200
GET    admin:nostrbridge_relayhealth_delete                                   login 403   403   403   403   403   403
POST   admin:nostrbridge_relayhealth_delete                                   login 403   403   403   403   403   403
GET    admin:nostrbridge_relayhealth_history                                  login 403   403   403   403   200   200
POST   admin:nostrbridge_relayhealth_history                                  login 403   403   403   403   200   200

# --- admin orders ------------------------------------------------------------------------------------------------
#      endpoint                                                               anon  staff ro    rw    asgnd oper  super
GET    admin:orders_bond_add                                                  login 403   403   403   403   403   403
POST   admin:orders_bond_add                                                  login 403   403   403   403   403   403
GET    admin:orders_bond_change                                               login 403   403   403   403   200   200
POST   admin:orders_bond_change                                               login 403   403   403   403   403   403
GET    admin:orders_bond_changelist                                           login 403   403   403   403   200   200
POST   admin:orders_bond_changelist                                           login 403   403   403   403   200   200
POST   admin:orders_bond_changelist?action=delete_selected                    login 403   403   403   403   200   200
GET    admin:orders_bond_delete                                               login 403   403   403   403   403   403
POST   admin:orders_bond_delete                                               login 403   403   403   403   403   403
GET    admin:orders_bond_history                                              login 403   403   403   403   200   200
POST   admin:orders_bond_history                                              login 403   403   403   403   200   200
GET    admin:orders_ban_add                                                   login 403   403   200   200   200   200
POST   admin:orders_ban_add                                                   login 403   403   302+  302+  302+  302+
GET    admin:orders_ban_change                                                login 403   403   200   200   200   200
POST   admin:orders_ban_change                                                login 403   403   403   403   403   403
GET    admin:orders_ban_changelist                                            login 403   403   200   200   200   200
POST   admin:orders_ban_changelist                                            login 403   403   200   200   200   200
POST   admin:orders_ban_changelist?action=delete_selected                     login 403   403   200   200   302   302
POST   admin:orders_ban_changelist?action=lift_selected                       login 403   403   200   200   302+  302+
GET    admin:orders_ban_delete                                                login 403   403   403   403   403   403
POST   admin:orders_ban_delete                                                login 403   403   403   403   403   403
GET    admin:orders_ban_history                                               login 403   403   200   200   200   200
POST   admin:orders_ban_history                                               login 403   403   200   200   200   200
GET    admin:orders_order_add                                                 login 403   403   403   403   403   403
POST   admin:orders_order_add                                                 login 403   403   403   403   403   403
GET    admin:orders_order_change                                              login 403   200   200   200   200   200
POST   admin:orders_order_change                                              login 403   403   403   403   403   403
GET    admin:orders_order_changelist                                          login 403   200   200   200   200   200
POST   admin:orders_order_changelist                                          login 403   200   200   200   200   200
POST   admin:orders_order_changelist?action=delete_selected                   login 403   200   200   200   302   302
POST   admin:orders_order_changelist?action=admin_cancel_pretrade             login 403   200   200   200   302   302
GET    admin:orders_order_delete                                              login 403   403   403   403   403   403
POST   admin:orders_order_delete                                              login 403   403   403   403   403   403
GET    admin:orders_order_history                                             login 403   200   200   200   200   200
POST   admin:orders_order_history                                             login 403   200   200   200   200   200
GET    admin:orders_orderstatuschange_add                                     login 403   403   403   403   403   403
POST   admin:orders_orderstatuschange_add                                     login 403   403   403   403   403   403
GET    admin:orders_orderstatuschange_change                                  login 403   200   200   200   200   200
POST   admin:orders_orderstatuschange_change                                  login 403   403   403   403   403   403
GET    admin:orders_orderstatuschange_changelist                              login 403   200   200   200   200   200
POST   admin:orders_orderstatuschange_changelist                              login 403   200   200   200   200   200
POST   admin:orders_orderstatuschange_changelist?action=delete_selected       login 403   200   200   200   200   200
GET    admin:orders_orderstatuschange_delete                                  login 403   403   403   403   403   403
POST   admin:orders_orderstatuschange_delete                                  login 403   403   403   403   403   403
GET    admin:orders_orderstatuschange_history                                 login 403   200   200   200   200   200
POST   admin:orders_orderstatuschange_history                                 login 403   200   200   200   200   200
GET    admin:orders_trader_add                                                login 403   403   403   403   403   403
POST   admin:orders_trader_add                                                login 403   403   403   403   403   403
GET    admin:orders_trader_change                                             login 403   403   403   403   200   200
POST   admin:orders_trader_change                                             login 403   403   403   403   403   403
GET    admin:orders_trader_changelist                                         login 403   403   403   403   200   200
POST   admin:orders_trader_changelist                                         login 403   403   403   403   200   200
POST   admin:orders_trader_changelist?action=delete_selected                  login 403   403   403   403   200   200
GET    admin:orders_trader_delete                                             login 403   403   403   403   403   403
POST   admin:orders_trader_delete                                             login 403   403   403   403   403   403
GET    admin:orders_trader_history                                            login 403   403   403   403   200   200
POST   admin:orders_trader_history                                            login 403   403   403   403   200   200

# --- operator and console pages ----------------------------------------------------------------------------------
#      endpoint                                                               anon  staff ro    rw    asgnd oper  super
GET    console:key                                                            login 200   200   200   200   200   200
POST   console:key                                                            login 302   302+  302+  302   302   302
GET    console:key-nip07                                                      login 405   405   405   405   405   405
POST   console:key-nip07                                                      login 400   400   400   400   400   400
GET    operator:dashboard                                                     login 403   403   403   403   200   200
POST   operator:dashboard                                                     login 403   403   403   403   200   200
GET    operator:maintenance                                                   login 403   403   403   403   405   405
POST   operator:maintenance                                                   login 403   403   403   403   302+  302+
GET    operator:settings                                                      login 403   403   403   403   200   200
POST   operator:settings                                                      login 403   403   403   403   302+  302+

# --- rest api ----------------------------------------------------------------------------------------------------
#      endpoint                                                               anon  staff ro    rw    asgnd oper  super
GET    /api/bans                                                              401   403   403   200   200   200   200
POST   /api/bans                                                              401   403   403   200+  200+  200+  200+
POST   /api/bans/{ban_id}/lift                                                401   403   403   403   403   200+  200+
GET    /api/dev-fees                                                          401   403   403   403   403   200   200
GET    /api/disputes                                                          401   403   200   200   200   200   200
GET    /api/disputes/{dispute_id}                                             401   403   200   200   200   200   200
POST   /api/disputes/{dispute_id}/cancel                                      401   403   403   403   200+  403   403
POST   /api/disputes/{dispute_id}/settle                                      401   403   403   403   200+  403   403
POST   /api/disputes/{dispute_id}/take                                        401   403   403   403   200+  200+  200+
GET    /api/maintenance                                                       401   403   403   403   403   200   200
POST   /api/maintenance                                                       401   403   403   403   403   200+  200+
GET    /api/node                                                              401   403   200   200   200   200   200
GET    /api/orders                                                            401   403   200   200   200   200   200
GET    /api/orders/{order_id}                                                 401   403   200   200   200   200   200
POST   /api/orders/{order_id}/cancel                                          401   403   403   403   403   409   409
GET    /api/solvers                                                           401   403   200   200   200   200   200
POST   /api/solvers                                                           401   403   403   403   403   200+  200+
DELETE /api/solvers/{pubkey}                                                  401   403   403   403   403   200+  200+
GET    /api/stats                                                             401   403   200   200   200   200   200
GET    api:api-root                                                           404   404   404   404   404   404   404
POST   api:api-root                                                           404   404   404   404   404   404   404
GET    api:openapi-json                                                       200   200   200   200   200   200   200
POST   api:openapi-json                                                       200   200   200   200   200   200   200
GET    api:openapi-view                                                       200   200   200   200   200   200   200
POST   api:openapi-view                                                       200   200   200   200   200   200   200
GET    healthz 200 200 200 200 200 200 200
POST   healthz 405 405 405 405 405 405 405
GET    metrics 404 404 404 404 404 404 404
POST   metrics 405 405 405 405 405 405 405
GET    readyz 503 503 503 503 503 503 503
POST   readyz 405 405 405 405 405 405 405
"""


def _parse(text: str) -> dict[Endpoint, tuple[str, ...]]:
    table = {}
    for line in text.strip().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        method, key, *outcomes = line.split()
        assert len(outcomes) == len(ROLES), line
        endpoint = Endpoint(key, method)
        assert endpoint not in table, f"two rows for {endpoint}"
        table[endpoint] = tuple(outcomes)
    return table


def section(endpoint: Endpoint) -> str:
    """Cells run grouped, one world per section: an admin app, the admin site, operator, REST."""
    key = endpoint.key.partition("?")[0]
    if key.startswith(("/api/", "api:")):
        return "rest api"
    if key.startswith(("operator:", "console:")):
        return "operator and console pages"
    if key in ("landing", "favicon", "healthz", "readyz", "metrics"):
        return "site pages"
    model_key = model_key_of(key)
    return f"admin {model_app(model_key[0])}" if model_key else "admin site"


TABLE = _parse(TABLE_TEXT)
