// LabClusterReconciler with the real LibvirtHypervisor on libvirt's test
// driver (test:///default). The test acts "behind vmlab's back" through a
// connection of its own to the same in-process driver. Lab names are unique
// per test, since the driver's state is shared by the whole process.
#include "reconcilers/labcluster_reconciler.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <thread>

#include "../controller/fake_desired_state.h"
#include "../controller/scratch_dir.h"
#include "controller/fake_clock.h"
#include "crds/canonical.h"
#include "crds/labcluster_parse.h"
#include "metrics/bootstrap_metrics.h"
#include "metrics/lab_metrics.h"
#include "metrics/registry.h"
#include "reconcilers/infrastructure/identity.h"
#include "reconcilers/infrastructure/lab_layout.h"
#include "reconcilers/infrastructure/libvirt_hypervisor.h"

namespace vmlab::reconcilers {
namespace {

using controller::DesiredLab;
using std::chrono::seconds;
using testing::HasSubstr;
namespace infra = infrastructure;

using testing_support::FakeDesiredState;

DesiredLab Desired(const std::string& name, int control_planes, int workers,
                   const std::string& policy = "Remediate",
                   const std::string& deletion = "Delete") {
  static int next_net = 0;
  const std::string text = fmt::format(
      "apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata: {{name: {}}}\nspec:\n"
      "  kubernetes: {{version: \"1.30.4\"}}\n  network: {{cidr: 172.30.{}.0/24}}\n"
      "  controlPlane: {{replicas: {}}}\n  workers: {{replicas: {}}}\n  drift: {{policy: {}}}\n"
      "  deletionPolicy: {}\n",
      name, 100 + (next_net++ % 100), control_planes, workers, policy, deletion);
  auto docs = crds::ParseManifests("lab.yaml", text);
  EXPECT_TRUE(docs.at(0).valid()) << text;
  DesiredLab lab;
  lab.name = name;
  lab.spec = docs.at(0).object;
  lab.spec_hash = crds::SpecHash(lab.spec->spec);
  lab.source = "lab.yaml";
  lab.spec_valid = true;
  return lab;
}

class LabClusterReconcilerTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(connection_.Ensure().has_value());
    ASSERT_TRUE(behind_connection_.Ensure().has_value());
  }
  // Labs are torn down through vmlab itself, so the shared driver is left clean.
  void TearDown() override {
    std::vector<std::string> names = desired_.Names();
    desired_.labs.clear();
    for (const auto& name : names) {
      for (int i = 0; i < 3 && store_.Get(name); ++i) (void)reconciler_.Reconcile(name);
    }
  }

  controller::LabRecord Record(const std::string& name) { return store_.Get(name).value(); }
  const controller::Condition& Cond(const controller::LabRecord& r, const char* type) {
    static const controller::Condition kMissing;
    const auto* c = r.FindCondition(type);
    EXPECT_NE(c, nullptr) << type;
    return c ? *c : kMissing;
  }
  // Reconciles until nothing asks for another pass (at most 10).
  void Settle(const std::string& name) {
    for (int i = 0; i < 10; ++i) {
      auto result = reconciler_.Reconcile(name);
      ASSERT_TRUE(result.has_value()) << result.error().message;
      if (result->requeue_after == controller::Duration::zero()) return;
    }
  }
  std::map<std::string, infra::DomainInfo> Domains(const std::string& lab) {
    std::map<std::string, infra::DomainInfo> out;
    const auto domains = hypervisor_.ListDomains();
    for (const auto& d : domains.value()) {
      if (d.name.starts_with(lab + "-")) out[d.name] = d;
    }
    return out;
  }
  std::vector<std::string> Volumes(const std::string& lab) {
    std::vector<std::string> out;
    auto volumes = hypervisor_.ListVolumes(infra::kPoolName);
    if (!volumes) return out;
    for (const auto& v : *volumes) {
      if (v.name.starts_with(lab + "-")) out.push_back(v.name);
    }
    return out;
  }
  bool NetworkExists(const std::string& lab) {
    const auto networks = hypervisor_.ListNetworks().value();
    return std::any_of(networks.begin(), networks.end(),
                       [&](const auto& n) { return n.name == infra::NetworkName(lab); });
  }

  testing_support::ScratchDir dir_;
  controller::FakeClock clock_;
  FakeDesiredState desired_;
  controller::StatusStore store_{dir_.path()};
  metrics::Registry registry_;
  metrics::LabMetrics lab_metrics_{registry_};
  infra::LibvirtConnection connection_{"test:///default", nullptr};
  infra::LibvirtHypervisor hypervisor_{connection_};
  InfrastructureReconciler infrastructure_{hypervisor_, dir_.path().string()};
  bootstrap::SecretStore secrets_{dir_.path()};
  LabClusterReconciler reconciler_{desired_, store_, infrastructure_, secrets_,
                                   {},       clock_, &lab_metrics_};
  // "Behind vmlab's back": another connection to the same driver.
  infra::LibvirtConnection behind_connection_{"test:///default", nullptr};
  infra::LibvirtHypervisor behind_{behind_connection_};
};

TEST_F(LabClusterReconcilerTest, CreatesTheLabAndSaysWhatIsNotDoneYet) {
  desired_.labs["rcnew"] = Desired("rcnew", 1, 2);
  Settle("rcnew");
  const auto r = Record("rcnew");
  EXPECT_EQ(r.generation, 1);
  EXPECT_EQ(Cond(r, "SpecValid").status, "True");
  EXPECT_EQ(Cond(r, "InfrastructureReady").status, "True");
  EXPECT_THAT(Cond(r, "InfrastructureReady").message,
              HasSubstr("3 domains running (libvirt TEST driver"));
  EXPECT_EQ(Cond(r, "Drifted").status, "False");
  EXPECT_EQ(Cond(r, "Ready").status, "Unknown");
  EXPECT_EQ(Cond(r, "Ready").reason, "NoGuests") << "the test driver runs no guests";
  EXPECT_EQ(Cond(r, "WorkersReady").status, "Unknown");
  EXPECT_THAT(Cond(r, "WorkersReady").message, HasSubstr("--simulate-guests"));
  ASSERT_EQ(r.nodes.size(), 3u);
  for (const auto& n : r.nodes) EXPECT_EQ(n.domain_state, "running") << n.name;
  EXPECT_EQ(Domains("rcnew").size(), 3u);
  EXPECT_EQ(Volumes("rcnew").size(), 6u) << "a root disk and a seed per node";
  EXPECT_TRUE(NetworkExists("rcnew"));
  EXPECT_TRUE(std::any_of(r.events.begin(), r.events.end(),
                          [](const auto& e) { return e.reason == "DomainsCreated"; }));
  EXPECT_NE(registry_.Serialize().find(
                "vmlab_labcluster_nodes{name=\"rcnew\",role=\"worker\",state=\"running\"} 2"),
            std::string::npos);
}

TEST_F(LabClusterReconcilerTest, GenerationMovesOnlyWithTheSpec) {
  desired_.labs["rcgen"] = Desired("rcgen", 1, 0);
  Settle("rcgen");
  Settle("rcgen");
  EXPECT_EQ(Record("rcgen").generation, 1) << "a resync must not bump the generation";
  desired_.labs["rcgen"] = Desired("rcgen", 1, 1);
  Settle("rcgen");
  EXPECT_EQ(Record("rcgen").generation, 2);
}

TEST_F(LabClusterReconcilerTest, InvalidSpecKeepsTheLabAsItWas) {
  desired_.labs["rcbad"] = Desired("rcbad", 1, 1);
  Settle("rcbad");
  DesiredLab broken = desired_.labs["rcbad"];
  broken.spec_valid = false;
  broken.invalid_reason = "InvalidSpec";
  broken.invalid_message =
      "lab.yaml:11:15: error: spec.workers.replicas: must be between 0 and 150";
  desired_.labs["rcbad"] = broken;
  Settle("rcbad");
  const auto r = Record("rcbad");
  EXPECT_EQ(r.generation, 1);
  EXPECT_EQ(Cond(r, "SpecValid").status, "False");
  EXPECT_THAT(Cond(r, "SpecValid").message,
              HasSubstr("the last valid spec (generation 1) stays in force"));
  EXPECT_EQ(Domains("rcbad").size(), 2u) << "an invalid edit destroys nothing";
}

TEST_F(LabClusterReconcilerTest, DriftIsRepairedAndTheUnownedLookAlikeLeftAlone) {
  desired_.labs["rcdrift"] = Desired("rcdrift", 2, 3);
  Settle("rcdrift");
  ASSERT_EQ(Domains("rcdrift").size(), 5u);

  // Behind vmlab's back: destroy one, undefine another, resize a third, stop
  // the network, and define a look-alike vmlab does not own.
  ASSERT_TRUE(behind_.StopDomain("rcdrift-cp-1").has_value());
  ASSERT_TRUE(behind_.DeleteDomain("rcdrift-worker-1").has_value());
  {
    const auto& spec = *desired_.labs["rcdrift"].spec;
    const auto node = crds::PlanNodes(spec).at(3);  // rcdrift-worker-2
    std::string xml =
        infra::RenderDomainXml(spec, node, infra::HostConfigFor(dir_.path(), spec, node, "qemu"),
                               desired_.labs["rcdrift"].spec_hash);
    xml.replace(xml.find(">2048<"), 6, ">4096<");
    xml.replace(xml.find(">2048<"), 6, ">4096<");
    ASSERT_TRUE(behind_.DefineDomain(xml).has_value());
  }
  ASSERT_TRUE(behind_.DeleteNetwork(infra::NetworkName("rcdrift")).has_value());
  ASSERT_TRUE(
      behind_
          .DefineDomain("<domain type='test'><name>rcdrift-worker-9</name><memory>1024</memory>"
                        "<os><type>hvm</type></os></domain>")
          .has_value());

  ASSERT_TRUE(reconciler_.Reconcile("rcdrift").has_value());
  auto r = Record("rcdrift");
  std::vector<std::string> kinds;
  for (const auto& d : r.drift) kinds.push_back(d.kind + " " + d.object);
  EXPECT_THAT(kinds, testing::UnorderedElementsAre(
                         "NetworkMissing vmlab-rcdrift", "DomainStopped rcdrift-cp-1",
                         "DomainMissing rcdrift-worker-1", "ResourceMismatch rcdrift-worker-2"));
  EXPECT_EQ(Cond(r, "Drifted").status, "True");
  Settle("rcdrift");
  r = Record("rcdrift");
  EXPECT_EQ(Cond(r, "Drifted").status, "False");
  EXPECT_EQ(Cond(r, "InfrastructureReady").status, "True");
  const auto domains = Domains("rcdrift");
  EXPECT_EQ(domains.at("rcdrift-cp-1").state, "running");
  EXPECT_EQ(domains.at("rcdrift-worker-1").state, "running");
  EXPECT_EQ(domains.at("rcdrift-worker-2").memory_mib, 2048);
  ASSERT_TRUE(domains.contains("rcdrift-worker-9")) << "an unowned look-alike is never touched";
  EXPECT_FALSE(domains.at("rcdrift-worker-9").owner.has_value());
  EXPECT_NE(registry_.Serialize().find("vmlab_drift_remediations_total{kind=\"DomainMissing\",name="
                                       "\"rcdrift\",result=\"success\"} 1"),
            std::string::npos);
  ASSERT_TRUE(behind_.DeleteDomain("rcdrift-worker-9").has_value());
}

TEST_F(LabClusterReconcilerTest, ReportPolicyOnlyReports) {
  desired_.labs["rcrep"] = Desired("rcrep", 1, 1, "Report");
  Settle("rcrep");
  ASSERT_TRUE(behind_.StopDomain("rcrep-worker-1").has_value());
  Settle("rcrep");
  const auto r = Record("rcrep");
  EXPECT_EQ(Cond(r, "Drifted").status, "True");
  EXPECT_THAT(Cond(r, "Drifted").message, HasSubstr("reported only"));
  EXPECT_EQ(Cond(r, "InfrastructureReady").reason, "DriftReported");
  EXPECT_EQ(Domains("rcrep").at("rcrep-worker-1").state, "shutoff") << "Report must not repair";
}

TEST_F(LabClusterReconcilerTest, ReportedMissingObjectsStayReportedUntilThePolicyAllowsRepair) {
  // Found by the observability test: the pass after the one that reported a
  // missing domain took the lab for a new one and silently recreated it.
  desired_.labs["rcgone"] = Desired("rcgone", 1, 1, "Report");
  Settle("rcgone");
  ASSERT_TRUE(behind_.DeleteDomain("rcgone-worker-1").has_value());
  ASSERT_TRUE(behind_.DeleteDomain("rcgone-cp-1").has_value());
  ASSERT_TRUE(behind_.DeleteNetwork(infra::NetworkName("rcgone")).has_value());
  ASSERT_TRUE(behind_.DeleteVolume(infra::kPoolName, "rcgone-worker-1-root.qcow2").has_value());
  for (int pass = 0; pass < 3; ++pass) ASSERT_TRUE(reconciler_.Reconcile("rcgone").has_value());
  auto r = Record("rcgone");
  EXPECT_TRUE(Domains("rcgone").empty()) << "Report must not repair, on any pass";
  EXPECT_THAT(Volumes("rcgone"), testing::Not(testing::Contains("rcgone-worker-1-root.qcow2")))
      << "nor a missing node's volume";
  std::vector<std::string> kinds;
  for (const auto& d : r.drift) kinds.push_back(d.kind + " " + d.object);
  EXPECT_THAT(kinds, testing::UnorderedElementsAre("NetworkMissing vmlab-rcgone",
                                                   "DomainMissing rcgone-cp-1",
                                                   "DomainMissing rcgone-worker-1",
                                                   "VolumeMissing rcgone-worker-1-root.qcow2"));
  EXPECT_EQ(Cond(r, "Drifted").status, "True");

  desired_.labs["rcgone"] = Desired("rcgone", 1, 1, "Remediate");
  Settle("rcgone");
  r = Record("rcgone");
  EXPECT_THAT(Cond(r, "Drifted").message, HasSubstr("repaired: NetworkMissing vmlab-rcgone"));
  ASSERT_TRUE(reconciler_.Reconcile("rcgone").has_value());
  EXPECT_EQ(Cond(Record("rcgone"), "Drifted").status, "False");
  EXPECT_EQ(Domains("rcgone").size(), 2u);
  EXPECT_NE(registry_.Serialize().find("vmlab_drift_remediations_total{kind=\"DomainMissing\",name="
                                       "\"rcgone\",result=\"success\"} 2"),
            std::string::npos)
      << "the repair is counted as a remediation, not taken for a new lab";
}

TEST_F(LabClusterReconcilerTest, SecretsItsNodesTrustAreNeverMadeAnew) {
  namespace fs = std::filesystem;
  desired_.labs["rcpki"] = Desired("rcpki", 1, 1);
  desired_.labs["rcother"] = Desired("rcother", 1, 0);
  Settle("rcpki");
  Settle("rcother");
  const std::string trusted = Record("rcpki").trusted_ca;
  ASSERT_TRUE(trusted.starts_with("sha256:")) << trusted;
  {
    controller::StatusStore reread(dir_.path());
    ASSERT_TRUE(reread.Load().has_value());
    EXPECT_EQ(reread.Get("rcpki")->trusted_ca, trusted) << "kept in the status file";
  }
  const fs::path pki = secrets_.Dir("rcpki");
  const fs::path backup = dir_.path() / "pki-backup";
  fs::copy(pki, backup, fs::copy_options::recursive);

  // The folder is gone (a restore that forgot it, a wrong state dir copy).
  ASSERT_TRUE(secrets_.Remove("rcpki").has_value());
  const auto refused = reconciler_.Reconcile("rcpki");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kFailedPrecondition) << "terminal: a person must act";
  EXPECT_THAT(refused.error().message, HasSubstr("secrets are gone from"));
  EXPECT_FALSE(secrets_.Load("rcpki").value().has_value()) << "no new secrets were made";
  auto r = Record("rcpki");
  EXPECT_EQ(Cond(r, "InfrastructureReady").reason, "SecretsUnavailable");
  EXPECT_THAT(Cond(r, "InfrastructureReady").message, HasSubstr(trusted));
  EXPECT_EQ(r.trusted_ca, trusted);
  EXPECT_EQ(Domains("rcpki").size(), 2u) << "the lab's VMs are left as they are";

  // Another lab's secrets in its place: refused as well.
  fs::copy(secrets_.Dir("rcother"), pki, fs::copy_options::recursive);
  const auto other = reconciler_.Reconcile("rcpki");
  ASSERT_FALSE(other.has_value());
  EXPECT_THAT(other.error().message, HasSubstr("carry another CA"));

  // Its own folder back: the lab goes on with the CA its nodes trust.
  ASSERT_TRUE(secrets_.Remove("rcpki").has_value());
  fs::copy(backup, pki, fs::copy_options::recursive);
  Settle("rcpki");
  r = Record("rcpki");
  EXPECT_EQ(Cond(r, "InfrastructureReady").status, "True");
  EXPECT_EQ(r.trusted_ca, trusted);

  // A status from before the CA was recorded: its nodes still protect the secrets.
  ASSERT_TRUE(store_.Update("rcpki", [](controller::LabRecord& rec) { rec.trusted_ca.clear(); })
                  .has_value());
  ASSERT_TRUE(secrets_.Remove("rcpki").has_value());
  const auto old_status = reconciler_.Reconcile("rcpki");
  ASSERT_FALSE(old_status.has_value());
  EXPECT_THAT(old_status.error().message, HasSubstr("trust the old CA"));
  fs::copy(backup, pki, fs::copy_options::recursive);
  Settle("rcpki");
  EXPECT_EQ(Record("rcpki").trusted_ca, trusted) << "recorded again from the folder put back";

  // Deleting the lab forgets its CA: created anew, it gets new secrets.
  desired_.labs.erase("rcpki");
  Settle("rcpki");
  desired_.labs["rcpki"] = Desired("rcpki", 1, 0);
  Settle("rcpki");
  EXPECT_NE(Record("rcpki").trusted_ca, trusted);
  EXPECT_TRUE(Record("rcpki").trusted_ca.starts_with("sha256:"));
}

TEST_F(LabClusterReconcilerTest, ScalesUpAndDownThenDeletesEverything) {
  desired_.labs["rcscale"] = Desired("rcscale", 1, 3);
  Settle("rcscale");
  EXPECT_EQ(Domains("rcscale").size(), 4u);
  desired_.labs["rcscale"] = Desired("rcscale", 1, 5);
  Settle("rcscale");
  EXPECT_EQ(Domains("rcscale").size(), 6u);
  auto dhcp_hosts = [&] {
    const auto networks = hypervisor_.ListNetworks();
    for (const auto& n : networks.value()) {
      if (n.name == infra::NetworkName("rcscale")) {
        EXPECT_TRUE(n.dns_hosts.contains("rcscale")) << "the endpoint's name stays";
        EXPECT_EQ(n.dns_hosts.size(), n.dhcp_hosts.size() + 1)
            << "nodes' DNS entries follow DHCP's";
        return n.dhcp_hosts.size();
      }
    }
    return std::size_t{0};
  };
  EXPECT_EQ(dhcp_hosts(), 6u) << "scaled-up nodes get their DHCP and DNS entries";
  desired_.labs["rcscale"] = Desired("rcscale", 1, 1);
  Settle("rcscale");
  auto domains = Domains("rcscale");
  EXPECT_EQ(domains.size(), 2u);
  EXPECT_TRUE(domains.contains("rcscale-worker-1")) << "scale down removes the highest indices";
  EXPECT_EQ(dhcp_hosts(), 2u);
  EXPECT_EQ(Volumes("rcscale").size(), 4u);

  desired_.labs.erase("rcscale");
  Settle("rcscale");
  EXPECT_TRUE(Domains("rcscale").empty());
  EXPECT_TRUE(Volumes("rcscale").empty());
  EXPECT_FALSE(NetworkExists("rcscale"));
  EXPECT_FALSE(store_.Get("rcscale").has_value());
}

TEST_F(LabClusterReconcilerTest, PreflightRefusesAConflictingNetworkAndCreatesNothing) {
  DesiredLab lab = Desired("rcpre", 1, 1);
  auto docs = crds::ParseManifests(
      "lab.yaml",
      "apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata: {name: rcpre}\nspec:\n"
      "  kubernetes: {version: \"1.30.4\"}\n  network: {cidr: 192.168.122.0/24}\n");
  lab.spec = docs.at(0).object;
  lab.spec_hash = crds::SpecHash(lab.spec->spec);
  desired_.labs["rcpre"] = lab;
  const auto result = reconciler_.Reconcile("rcpre");
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kFailedPrecondition);
  const auto r = Record("rcpre");
  EXPECT_EQ(Cond(r, "InfrastructureReady").reason, "PreflightFailed");
  EXPECT_THAT(Cond(r, "InfrastructureReady").message, HasSubstr("libvirt network \"default\""));
  EXPECT_TRUE(Domains("rcpre").empty());
  EXPECT_FALSE(NetworkExists("rcpre"));
  EXPECT_TRUE(Volumes("rcpre").empty());
}

TEST_F(LabClusterReconcilerTest, RetainKeepsVolumesOnDeletion) {
  desired_.labs["rcret"] = Desired("rcret", 1, 1, "Remediate", "Retain");
  Settle("rcret");
  desired_.labs.erase("rcret");
  Settle("rcret");
  EXPECT_TRUE(Domains("rcret").empty());
  EXPECT_FALSE(NetworkExists("rcret"));
  EXPECT_EQ(Volumes("rcret").size(), 2u);
  for (const auto& v : Volumes("rcret"))
    ASSERT_TRUE(hypervisor_.DeleteVolume(infra::kPoolName, v).has_value());
}

// With simulated guests: phases reported through the real checks drive node
// status, ControlPlaneReady, WorkersReady and Ready; an injected failure
// shows in status, events and metrics, and the runner's retry recovers.
class SimulatedGuestsTest : public LabClusterReconcilerTest {
 protected:
  static bootstrap::SimulationOptions Options() {
    bootstrap::SimulationOptions options;
    for (auto& entry : options.phase_seconds) entry.second = 0.01;
    options.retry_seconds = 1.5;  // long enough to see the failure in status
    return options;
  }
  // Reconciles until `done` holds (progress arrives from the simulator's thread).
  bool ReconcileUntil(const std::string& name,
                      const std::function<bool(const controller::LabRecord&)>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      (void)simulated_.Reconcile(name);
      if (auto r = store_.Get(name); r && done(*r)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  void TearDown() override {
    desired_.labs.clear();
    for (const auto& r : store_.List()) {
      for (int i = 0; i < 3 && store_.Get(r.name); ++i) (void)simulated_.Reconcile(r.name);
    }
  }

  controller::RealClock real_clock_;
  metrics::BootstrapMetrics bootstrap_metrics_{registry_};
  bootstrap::ProgressStore progress_{real_clock_, nullptr, &bootstrap_metrics_};
  bootstrap::GuestSimulator simulator_{real_clock_, progress_, Options()};
  LabClusterReconciler simulated_{
      desired_,
      store_,
      infrastructure_,
      secrets_,
      {},
      real_clock_,
      &lab_metrics_,
      {&progress_, &simulator_, nullptr, 0, nullptr, nullptr, 2379, seconds(1)}};
};

TEST_F(SimulatedGuestsTest, ThreePlusFiveLabGoesReadyAndAnInjectedFailureRecovers) {
  DesiredLab lab = Desired("rcsim", 3, 5);
  auto spec = *lab.spec;
  spec.metadata.annotations[bootstrap::kSimulateFailureAnnotation] = "rcsim-worker-4/base";
  lab.spec = spec;
  desired_.labs["rcsim"] = lab;

  ASSERT_TRUE(ReconcileUntil("rcsim",
                             [&](const controller::LabRecord& r) {
                               return Cond(r, "WorkersReady").reason == "PhaseFailed";
                             }))
      << "the injected failure shows; WorkersReady: "
      << Cond(Record("rcsim"), "WorkersReady").reason << " "
      << Cond(Record("rcsim"), "WorkersReady").message
      << "; InfrastructureReady: " << Cond(Record("rcsim"), "InfrastructureReady").message;
  auto r = Record("rcsim");
  EXPECT_THAT(Cond(r, "WorkersReady").message,
              HasSubstr("rcsim-worker-4: phase base failed (exit 1, attempt 1)"));
  EXPECT_THAT(Cond(r, "WorkersReady").message, HasSubstr("simulated failure of phase base"));
  EXPECT_EQ(Cond(r, "Ready").status, "False");
  EXPECT_TRUE(std::any_of(r.events.begin(), r.events.end(), [](const auto& e) {
    return e.type == "Warning" && e.reason == "PhaseFailed";
  }));
  EXPECT_TRUE(std::any_of(r.events.begin(), r.events.end(),
                          [](const auto& e) { return e.reason == "GuestsSimulated"; }));
  const auto node = std::find_if(r.nodes.begin(), r.nodes.end(),
                                 [](const auto& n) { return n.name == "rcsim-worker-4"; });
  ASSERT_NE(node, r.nodes.end());
  EXPECT_EQ(node->bootstrap_phase, "base: failed (exit 1, attempt 1)");

  ASSERT_TRUE(ReconcileUntil("rcsim", [&](const controller::LabRecord& rec) {
    return Cond(rec, "Ready").status == "True";
  })) << "the retry recovers and the lab goes Ready";
  r = Record("rcsim");
  EXPECT_EQ(Cond(r, "Ready").reason, "SimulatedReady");
  EXPECT_EQ(Cond(r, "ControlPlaneReady").message, "3 of 3 control planes Ready");
  EXPECT_EQ(Cond(r, "WorkersReady").message, "5 of 5 workers Ready");
  for (const auto& n : r.nodes) {
    EXPECT_TRUE(n.ready) << n.name;
    EXPECT_EQ(n.bootstrap_phase, n.role == "worker"       ? "worker: done"
                                 : n.name == "rcsim-cp-1" ? "primary: done"
                                                          : "secondary: done")
        << n.name;
  }
  const std::string metrics = registry_.Serialize();
  EXPECT_THAT(
      metrics,
      HasSubstr(
          R"(vmlab_bootstrap_phase_duration_seconds_count{cache="none",phase="secondary",role="control-plane"} 2)"));
  EXPECT_THAT(
      metrics,
      HasSubstr(
          R"(vmlab_bootstrap_phase_duration_seconds_count{cache="none",phase="worker",role="worker"} 5)"));
  EXPECT_THAT(
      metrics,
      HasSubstr(R"(vmlab_labcluster_status_condition{name="rcsim",status="True",type="Ready"} 1)"));
}

// Workers 5 -> 2 through the simulated cluster's API: drained one at a time,
// highest index first (cordon, evictions, Node deleted), then their VMs go;
// the Deployment's pods keep running on the workers that stay.
TEST_F(SimulatedGuestsTest, WorkersDrainHighestIndexFirstBeforeTheirVmsGo) {
  desired_.labs["rcdrain"] = Desired("rcdrain", 3, 5);
  ASSERT_TRUE(ReconcileUntil("rcdrain", [&](const controller::LabRecord& r) {
    return Cond(r, "Ready").status == "True";
  })) << "3 + 5 reach Ready";
  const auto cluster = simulator_.Cluster("rcdrain");
  ASSERT_EQ(cluster->Nodes().size(), 8u);
  const auto demo_pods = [&] {
    std::size_t count = 0;
    for (int i = 1; i <= 5; ++i) {
      for (const auto& pod : cluster->PodsOn(fmt::format("rcdrain-worker-{}", i))) {
        count += pod.starts_with("default/") ? 1u : 0u;
      }
    }
    return count;
  };
  ASSERT_EQ(demo_pods(), 10u);

  desired_.labs["rcdrain"] = Desired("rcdrain", 3, 2);
  ASSERT_TRUE(ReconcileUntil("rcdrain",
                             [&](const controller::LabRecord& r) {
                               return Cond(r, "Ready").status == "True" &&
                                      Domains("rcdrain").size() == 5u;
                             }))
      << "InfrastructureReady: " << Cond(Record("rcdrain"), "InfrastructureReady").message;
  const auto r = Record("rcdrain");
  std::vector<std::string> drained;
  for (const auto& e : r.events) {
    if (e.reason == "NodeDrained") drained.push_back(e.message.substr(0, e.message.find(' ')));
  }
  EXPECT_THAT(drained,
              testing::ElementsAre("rcdrain-worker-5", "rcdrain-worker-4", "rcdrain-worker-3"));
  EXPECT_EQ(cluster->NodeDeletions(), 3);
  std::vector<std::string> nodes;
  for (const auto& n : cluster->Nodes()) nodes.push_back(n.name);
  EXPECT_THAT(nodes, testing::ElementsAre("rcdrain-cp-1", "rcdrain-cp-2", "rcdrain-cp-3",
                                          "rcdrain-worker-1", "rcdrain-worker-2"));
  EXPECT_EQ(demo_pods(), 10u) << "every evicted pod runs again on a worker that stays";
  EXPECT_EQ(r.nodes.size(), 5u);
  EXPECT_EQ(Cond(r, "WorkersReady").message, "2 of 2 workers Ready");
}

// A PodDisruptionBudget that allows no eviction keeps the worker and its VM,
// says so (DrainBlocked, then DrainTimedOut with a Warning event), and the
// drain finishes once the budget allows it.
TEST_F(SimulatedGuestsTest, ABlockedDrainKeepsTheVmAndSaysWhy) {
  desired_.labs["rcpdb"] = Desired("rcpdb", 1, 2);
  ASSERT_TRUE(ReconcileUntil(
      "rcpdb", [&](const controller::LabRecord& r) { return Cond(r, "Ready").status == "True"; }));
  DesiredLab smaller = Desired("rcpdb", 1, 1);
  auto spec = *smaller.spec;
  spec.metadata.annotations[bootstrap::kSimulateBlockedEvictionAnnotation] = "rcpdb-worker-2";
  smaller.spec = spec;
  desired_.labs["rcpdb"] = smaller;
  ASSERT_TRUE(ReconcileUntil("rcpdb", [&](const controller::LabRecord& r) {
    return Cond(r, "InfrastructureReady").reason == "DrainBlocked";
  })) << Cond(Record("rcpdb"), "InfrastructureReady").reason;
  auto r = Record("rcpdb");
  EXPECT_THAT(Cond(r, "InfrastructureReady").message,
              HasSubstr("draining rcpdb-worker-2: 2 pod(s) left; eviction refused for "
                        "pod default/demo-"));
  EXPECT_THAT(Cond(r, "InfrastructureReady").message,
              HasSubstr("would violate the pod's disruption budget"));
  EXPECT_TRUE(Domains("rcpdb").contains("rcpdb-worker-2")) << "the VM stays while blocked";
  const auto held = std::find_if(r.nodes.begin(), r.nodes.end(),
                                 [](const auto& n) { return n.name == "rcpdb-worker-2"; });
  ASSERT_NE(held, r.nodes.end()) << "a draining worker stays known in status";
  EXPECT_EQ(held->bootstrap_phase, "drain blocked");
  auto nodes = simulator_.Cluster("rcpdb")->Nodes();
  EXPECT_TRUE(std::any_of(nodes.begin(), nodes.end(), [](const auto& n) {
    return n.name == "rcpdb-worker-2" && n.unschedulable;
  })) << "cordoned";
  EXPECT_EQ(Cond(r, "WorkersReady").message, "1 of 1 workers Ready");

  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // the 1 s drain timeout
  ASSERT_TRUE(ReconcileUntil("rcpdb", [&](const controller::LabRecord& rec) {
    return Cond(rec, "InfrastructureReady").reason == "DrainTimedOut";
  }));
  r = Record("rcpdb");
  EXPECT_THAT(Cond(r, "InfrastructureReady").message, HasSubstr("past the drain timeout of 1 s"));
  EXPECT_TRUE(std::any_of(r.events.begin(), r.events.end(), [](const auto& e) {
    return e.type == "Warning" && e.reason == "DrainTimedOut";
  }));
  EXPECT_TRUE(Domains("rcpdb").contains("rcpdb-worker-2")) << "still kept after the timeout";

  desired_.labs["rcpdb"] = Desired("rcpdb", 1, 1);  // the budget allows it now
  ASSERT_TRUE(ReconcileUntil("rcpdb", [&](const controller::LabRecord& rec) {
    return Cond(rec, "InfrastructureReady").status == "True";
  }));
  EXPECT_FALSE(Domains("rcpdb").contains("rcpdb-worker-2"));
  nodes = simulator_.Cluster("rcpdb")->Nodes();
  EXPECT_EQ(nodes.size(), 2u);
}

// A drain whose Node goes away before vmlab saw its last step finish (its
// own delete timed out on a loaded host, or `kubectl delete node`) is done:
// NodeDrained, and the VM goes.
TEST_F(SimulatedGuestsTest, ADrainWhoseNodeIsGoneIsDone) {
  desired_.labs["rcgone"] = Desired("rcgone", 1, 2);
  ASSERT_TRUE(ReconcileUntil(
      "rcgone", [&](const controller::LabRecord& r) { return Cond(r, "Ready").status == "True"; }));
  DesiredLab smaller = Desired("rcgone", 1, 1);
  auto spec = *smaller.spec;
  spec.metadata.annotations[bootstrap::kSimulateBlockedEvictionAnnotation] = "rcgone-worker-2";
  smaller.spec = spec;
  desired_.labs["rcgone"] = smaller;
  ASSERT_TRUE(ReconcileUntil("rcgone", [&](const controller::LabRecord& r) {
    return Cond(r, "InfrastructureReady").reason == "DrainBlocked";
  }));
  auto drained = [&] {
    const auto r = Record("rcgone");
    return std::count_if(r.events.begin(), r.events.end(),
                         [](const auto& e) { return e.reason == "NodeDrained"; });
  };
  EXPECT_EQ(drained(), 0);
  ASSERT_TRUE(simulator_.Cluster("rcgone")->Client()->DeleteNode("rcgone-worker-2"));
  ASSERT_TRUE(ReconcileUntil("rcgone", [&](const controller::LabRecord& r) {
    return Cond(r, "InfrastructureReady").status == "True";
  })) << Cond(Record("rcgone"), "InfrastructureReady").message;
  EXPECT_FALSE(Domains("rcgone").contains("rcgone-worker-2"));
  const auto r = Record("rcgone");
  const auto event = std::find_if(r.events.begin(), r.events.end(),
                                  [](const auto& e) { return e.reason == "NodeDrained"; });
  ASSERT_NE(event, r.events.end());
  EXPECT_EQ(event->message, "rcgone-worker-2 drained: its Node is gone; its VM is removed");
  EXPECT_EQ(drained(), 1);
}

// Real guests: their reports (posted here as a node would) and then the
// Kubernetes API (a fake client) decide readiness.
class KubernetesHealthTest : public LabClusterReconcilerTest {
 protected:
  void Report(const std::string& lab, const std::string& node, const std::string& phase, int seq,
              const std::vector<const char*>& states = {"started", "done"}) {
    const auto secrets = secrets_.Load(lab).value().value();
    for (const char* state : states) {
      ASSERT_EQ(
          progress_.Report(lab, "Bearer " + bootstrap::NodeToken(secrets.progress_key, node),
                           fmt::format(R"({{"node":"{}","phase":"{}","state":"{}","seq":{}}})",
                                       node, phase, state, seq * 2 + (state[0] == 'd'))),
          bootstrap::Verdict::kAccepted);
    }
  }

  // The lab's Kubernetes API: the simulator's in-memory cluster stands in.
  std::shared_ptr<bootstrap::SimulatedCluster> api_ =
      std::make_shared<bootstrap::SimulatedCluster>(clock_);
  int opened_ = 0;
  bootstrap::ProgressStore progress_{clock_, nullptr, nullptr};
  LabClusterReconciler real_{desired_,
                             store_,
                             infrastructure_,
                             secrets_,
                             {},
                             clock_,
                             &lab_metrics_,
                             {&progress_, nullptr, nullptr, 0,
                              [this](bootstrap::KubernetesAccess access) {
                                EXPECT_TRUE(access.server.starts_with("https://172.30.") &&
                                            access.server.ends_with(".10:16443"))
                                    << "the VIP and endpoint port: " << access.server;
                                ++opened_;
                                return api_->Client();
                              },
                              [this](bootstrap::EtcdAccess access) {
                                etcd_access_ = access;
                                return api_->Etcd();
                              },
                              2379, seconds(600)}};
  bootstrap::EtcdAccess etcd_access_;
};

TEST_F(KubernetesHealthTest, ReadinessComesFromTheApiOnceThePrimaryIsDone) {
  DesiredLab lab = Desired("rcapi", 1, 1);
  desired_.labs["rcapi"] = lab;
  ASSERT_TRUE(real_.Reconcile("rcapi"));
  int seq = 1;
  for (const char* phase : {"base", "endpoint", "kubernetes"})
    Report("rcapi", "rcapi-cp-1", phase, seq++);
  ASSERT_TRUE(real_.Reconcile("rcapi"));
  EXPECT_EQ(opened_, 0) << "no API call before the primary is done";
  EXPECT_EQ(Cond(Record("rcapi"), "ControlPlaneReady").reason, "Bootstrapping");

  Report("rcapi", "rcapi-cp-1", "primary", seq++);
  for (const char* phase : {"base", "kubernetes", "worker"})
    Report("rcapi", "rcapi-worker-1", phase, seq++);
  api_->SetUnavailable("Kubernetes API https://...: connection refused");
  auto result = real_.Reconcile("rcapi");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->requeue_after, std::chrono::seconds(15)) << "look again soon";
  auto r = Record("rcapi");
  EXPECT_EQ(Cond(r, "ControlPlaneReady").status, "Unknown");
  EXPECT_EQ(Cond(r, "ControlPlaneReady").reason, "KubernetesUnreachable");
  EXPECT_THAT(Cond(r, "ControlPlaneReady").message, HasSubstr("connection refused"));

  api_->SetUnavailable("");
  api_->PutNode({"rcapi-cp-1", true, false});
  api_->PutNode({"rcapi-worker-1", false, false});
  ASSERT_TRUE(real_.Reconcile("rcapi"));
  r = Record("rcapi");
  EXPECT_EQ(Cond(r, "ControlPlaneReady").status, "True");
  EXPECT_EQ(Cond(r, "WorkersReady").reason, "NodesNotReady");
  EXPECT_EQ(Cond(r, "WorkersReady").message, "0 of 1 workers Ready in the Kubernetes API");
  EXPECT_EQ(Cond(r, "Ready").status, "False");

  api_->PutNode({"rcapi-worker-1", true, false});
  result = real_.Reconcile("rcapi");
  ASSERT_TRUE(result);
  r = Record("rcapi");
  EXPECT_EQ(Cond(r, "Ready").status, "True");
  EXPECT_EQ(Cond(r, "Ready").reason, "Ready");
  EXPECT_EQ(result->requeue_after, controller::Duration::zero());
  for (const auto& n : r.nodes) EXPECT_TRUE(n.ready) << n.name;
}

// A Node the API calls Ready counts only once its node has finished its
// phases: a joining control plane's kubelet is Ready before its etcd member
// and API server are (seen on a real 1.20.2 control-plane join).
TEST_F(KubernetesHealthTest, ANodeReadyInTheApiWaitsForItsPhasesToFinish) {
  desired_.labs["rcjoin"] = Desired("rcjoin", 1, 1);
  ASSERT_TRUE(real_.Reconcile("rcjoin"));
  int seq = 1;
  for (const char* phase : {"base", "endpoint", "kubernetes", "primary"})
    Report("rcjoin", "rcjoin-cp-1", phase, seq++);
  for (const char* phase : {"base", "kubernetes"}) Report("rcjoin", "rcjoin-worker-1", phase, seq++);
  Report("rcjoin", "rcjoin-worker-1", "worker", seq, {"started"});
  api_->PutNode({"rcjoin-cp-1", true, false});
  api_->PutNode({"rcjoin-worker-1", true, false});
  ASSERT_TRUE(real_.Reconcile("rcjoin"));
  auto r = Record("rcjoin");
  EXPECT_EQ(Cond(r, "ControlPlaneReady").status, "True");
  EXPECT_EQ(Cond(r, "WorkersReady").reason, "Bootstrapping");
  EXPECT_EQ(Cond(r, "WorkersReady").message,
            "0 of 1 workers Ready; rcjoin-worker-1: phase worker started");
  EXPECT_EQ(Cond(r, "Ready").status, "False");

  Report("rcjoin", "rcjoin-worker-1", "worker", seq, {"done"});
  ASSERT_TRUE(real_.Reconcile("rcjoin"));
  r = Record("rcjoin");
  EXPECT_EQ(Cond(r, "WorkersReady").status, "True");
  EXPECT_EQ(Cond(r, "Ready").status, "True");
}

// Control planes leave one at a time, highest index first: etcd member
// removed (only while the members left keep a healthy quorum), Node drained
// and deleted, then the VM; one that never joined simply goes.
TEST_F(KubernetesHealthTest, ControlPlanesLeaveEtcdOnlyWhileItKeepsQuorum) {
  desired_.labs["rccp"] = Desired("rccp", 4, 0);
  ASSERT_TRUE(real_.Reconcile("rccp"));
  ASSERT_EQ(Domains("rccp").size(), 4u);
  const auto secrets = secrets_.Load("rccp").value().value();
  int seq = 1;
  for (const char* phase : {"base", "endpoint", "kubernetes", "primary"})
    Report("rccp", "rccp-cp-1", phase, seq++);
  api_->Init("rccp-cp-1", secrets.token, clock_.WallNow() + std::chrono::hours(24));
  for (const char* cp : {"rccp-cp-2", "rccp-cp-3"}) {
    for (const char* phase : {"base", "endpoint", "kubernetes", "secondary"})
      Report("rccp", cp, phase, seq++);
    ASSERT_TRUE(api_->Join(cp, false, secrets.token));
  }
  // rccp-cp-4 never got to its join.
  ASSERT_TRUE(real_.Reconcile("rccp"));
  EXPECT_THAT(api_->EtcdMembers(), testing::ElementsAre("rccp-cp-1", "rccp-cp-2", "rccp-cp-3"));

  api_->NodeDown("rccp-cp-2");  // its etcd member stops answering
  desired_.labs["rccp"] = Desired("rccp", 1, 0);
  (void)real_.Reconcile("rccp");
  auto r = Record("rccp");
  EXPECT_FALSE(Domains("rccp").contains("rccp-cp-4")) << "never joined: no member to remove";
  EXPECT_EQ(Cond(r, "InfrastructureReady").reason, "ControlPlaneScaleDownRefused");
  EXPECT_THAT(Cond(r, "InfrastructureReady").message,
              HasSubstr("rccp-cp-3 kept: removing its etcd member now would cost etcd its quorum: "
                        "without rccp-cp-3, etcd has 2 member(s), 1 healthy (quorum 2); not "
                        "healthy: rccp-cp-2"));
  EXPECT_EQ(Domains("rccp").size(), 3u) << "no control plane removed while etcd needs it";
  EXPECT_THAT(api_->EtcdMembers(), testing::ElementsAre("rccp-cp-1", "rccp-cp-2", "rccp-cp-3"));
  std::vector<std::string> phases;
  for (const auto& n : r.nodes) phases.push_back(n.name + " " + n.bootstrap_phase);
  EXPECT_THAT(phases, testing::ElementsAre("rccp-cp-1 primary: done",
                                           "rccp-cp-2 kept: waiting to leave the cluster",
                                           "rccp-cp-3 kept: scale-down refused"));
  EXPECT_THAT(etcd_access_.endpoints, testing::ElementsAre(testing::EndsWith(".11:2379")))
      << "etcd is asked through the control planes that stay";
  EXPECT_THAT(etcd_access_.ca_pem, HasSubstr("BEGIN CERTIFICATE"));

  ASSERT_TRUE(api_->Join("rccp-cp-2", false, secrets.token));  // healthy again
  ASSERT_TRUE(real_.Reconcile("rccp"));
  EXPECT_THAT(Domains("rccp"), testing::ElementsAre(testing::Key("rccp-cp-1")));
  EXPECT_THAT(api_->EtcdMembers(), testing::ElementsAre("rccp-cp-1"));
  std::vector<std::string> nodes;
  for (const auto& n : api_->Nodes()) nodes.push_back(n.name);
  EXPECT_THAT(nodes, testing::ElementsAre("rccp-cp-1"));
  r = Record("rccp");
  std::vector<std::string> removed;
  for (const auto& e : r.events) {
    if (e.reason == "EtcdMemberRemoved") removed.push_back(e.message.substr(0, 9));
  }
  EXPECT_THAT(removed, testing::ElementsAre("rccp-cp-3", "rccp-cp-2"));
  EXPECT_EQ(Cond(r, "InfrastructureReady").status, "True");
}

TEST_F(KubernetesHealthTest, ANodeRecreatedFromAFreshDiskHasItsStaleNodeDeleted) {
  desired_.labs["rcstale"] = Desired("rcstale", 1, 1);
  ASSERT_TRUE(real_.Reconcile("rcstale"));
  int seq = 1;
  for (const char* phase : {"base", "endpoint", "kubernetes", "primary"})
    Report("rcstale", "rcstale-cp-1", phase, seq++);
  for (const char* phase : {"base", "kubernetes", "worker"})
    Report("rcstale", "rcstale-worker-1", phase, seq++);
  api_->PutNode({"rcstale-cp-1", true, false});
  api_->PutNode({"rcstale-worker-1", true, false});
  ASSERT_TRUE(real_.Reconcile("rcstale"));
  ASSERT_EQ(Cond(Record("rcstale"), "Ready").status, "True");

  ASSERT_TRUE(behind_.DeleteDomain("rcstale-worker-1").has_value());  // and its disk is new
  api_->PutNode({"rcstale-worker-1", false, false});                  // the kubelet is gone
  ASSERT_TRUE(real_.Reconcile("rcstale"));
  auto r = Record("rcstale");
  EXPECT_TRUE(std::any_of(r.events.begin(), r.events.end(), [](const auto& e) {
    return e.reason == "StaleNodeDeleted" && e.message.starts_with("rcstale-worker-1 ");
  }));
  const auto nodes = api_->Nodes();
  ASSERT_EQ(nodes.size(), 1u) << "the stale Node went before the node joins again";
  EXPECT_EQ(nodes[0].name, "rcstale-cp-1");
  const auto worker = std::find_if(r.nodes.begin(), r.nodes.end(),
                                   [](const auto& n) { return n.name == "rcstale-worker-1"; });
  ASSERT_NE(worker, r.nodes.end());
  EXPECT_FALSE(worker->ready);
  EXPECT_EQ(worker->bootstrap_phase, "") << "a fresh disk starts over";

  // It joins again (as kubeadm would, registering a new Node): Ready again.
  for (const char* phase : {"base", "kubernetes", "worker"})
    Report("rcstale", "rcstale-worker-1", phase, seq++);
  api_->PutNode({"rcstale-worker-1", true, false});
  ASSERT_TRUE(real_.Reconcile("rcstale"));
  EXPECT_EQ(Cond(Record("rcstale"), "Ready").status, "True");
  EXPECT_EQ(api_->NodeDeletions(), 1);
}

TEST_F(KubernetesHealthTest, AControlPlaneRecreatedLeavesEtcdBeforeItJoinsAgain) {
  desired_.labs["rcstcp"] = Desired("rcstcp", 3, 0);
  ASSERT_TRUE(real_.Reconcile("rcstcp"));
  const auto secrets = secrets_.Load("rcstcp").value().value();
  int seq = 1;
  for (const char* phase : {"base", "endpoint", "kubernetes", "primary"})
    Report("rcstcp", "rcstcp-cp-1", phase, seq++);
  api_->Init("rcstcp-cp-1", secrets.token, clock_.WallNow() + std::chrono::hours(24));
  for (const char* cp : {"rcstcp-cp-2", "rcstcp-cp-3"}) {
    for (const char* phase : {"base", "endpoint", "kubernetes", "secondary"})
      Report("rcstcp", cp, phase, seq++);
    ASSERT_TRUE(api_->Join(cp, false, secrets.token));
  }
  ASSERT_TRUE(real_.Reconcile("rcstcp"));

  ASSERT_TRUE(behind_.DeleteDomain("rcstcp-cp-3").has_value());
  api_->NodeDown("rcstcp-cp-3");
  ASSERT_TRUE(real_.Reconcile("rcstcp"));
  EXPECT_THAT(api_->EtcdMembers(), testing::ElementsAre("rcstcp-cp-1", "rcstcp-cp-2"))
      << "a fresh disk cannot rejoin under a member that still names it";
  std::vector<std::string> nodes;
  for (const auto& n : api_->Nodes()) nodes.push_back(n.name);
  EXPECT_THAT(nodes, testing::ElementsAre("rcstcp-cp-1", "rcstcp-cp-2"));
  const auto r = Record("rcstcp");
  std::vector<std::string> reasons;
  for (const auto& e : r.events) {
    if (e.message.starts_with("rcstcp-cp-3")) reasons.push_back(e.reason);
  }
  EXPECT_THAT(reasons, testing::IsSupersetOf({"EtcdMemberRemoved", "StaleNodeDeleted"}));
}

TEST_F(KubernetesHealthTest, TheBootstrapTokenIsRotatedBeforeItExpires) {
  desired_.labs["rctoken"] = Desired("rctoken", 1, 1);
  ASSERT_TRUE(real_.Reconcile("rctoken"));
  int seq = 1;
  for (const char* phase : {"base", "endpoint", "kubernetes", "primary"})
    Report("rctoken", "rctoken-cp-1", phase, seq++);
  api_->PutNode({"rctoken-cp-1", true, false});
  const auto first = secrets_.Load("rctoken").value().value();
  ASSERT_TRUE(real_.Reconcile("rctoken"));
  EXPECT_TRUE(api_->Tokens().empty()) << "a fresh token is left alone";

  std::string previous = first.token;
  for (int day = 1; day <= 30; ++day) {  // a lab left running for a month
    clock_.Advance(std::chrono::hours(13));
    ASSERT_TRUE(real_.Reconcile("rctoken"));
    clock_.Advance(std::chrono::hours(11));
    ASSERT_TRUE(real_.Reconcile("rctoken"));
    const auto now = secrets_.Load("rctoken").value().value();
    ASSERT_NE(now.token, previous) << "day " << day;
    EXPECT_EQ(now.token_created + now.token_ttl > clock_.WallNow(), true) << "still valid";
    previous = now.token;
  }
  const auto last = secrets_.Load("rctoken").value().value();
  EXPECT_TRUE(api_->Tokens().contains(last.token.substr(0, 6)))
      << "the token on disk is the one in the cluster";
  EXPECT_TRUE(api_->Join("rctoken-worker-9", true, last.token))
      << "a worker added a month later joins with it";
  EXPECT_FALSE(api_->Join("rctoken-worker-8", true, first.token)) << "the first one expired";
  const auto r = Record("rctoken");
  EXPECT_TRUE(std::any_of(r.events.begin(), r.events.end(), [&](const auto& e) {
    return e.reason == "BootstrapTokenRotated" &&
           e.message.find(last.token.substr(0, 6)) != std::string::npos;
  }));
}

}  // namespace
}  // namespace vmlab::reconcilers
